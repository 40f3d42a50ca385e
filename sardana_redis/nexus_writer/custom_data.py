"""Custom data in NeXus files, where NXscanH5_FileRecorder puts them.

Each value goes to ``<nxpath>/<name>``: ``nxpath`` relative to the scan's entry
(default ``custom_data:NXcollection``) or absolute, each of its parts
``name[:NX_class]``; missing groups are created (``NXcollection`` unless the
part names a class). As in Sardana: the value's own type makes the dataset
(booleans as integers), values of other types than Sardana's supported ones
are left out with a warning, and an existing dataset is never overwritten.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from typing import Any

import h5py

from sardana_redis.custom_data import CustomData, decode_value, read_custom_data

log = logging.getLogger(__name__)

#: NXscanH5_FileRecorder's supported dtypes (plus ``char``, the ``dtype`` keyword it accepts).
SUPPORTED = frozenset({"float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                       "uint16", "uint32", "uint64", "str", "char"})


def _group(file: h5py.File, entry: str, nxpath: str) -> h5py.Group:
    """The group ``nxpath`` names (relative to ``entry``), created as Sardana does."""
    path = nxpath if nxpath.startswith("/") else posixpath.join(f"/{entry}:NXentry", nxpath)
    group = file["/"]
    for part in filter(None, path.split("/")):
        name, _, nxclass = part.partition(":")
        if not name or name in (".", ".."):
            raise ValueError(f"bad group name {part!r} in {nxpath!r}")
        group = group.require_group(name)
        if "NX_class" not in group.attrs:
            group.attrs["NX_class"] = nxclass or "NXcollection"
    return group


def _value(item: CustomData) -> Any:
    """The value to store, or ValueError when Sardana's recorder would not store it."""
    if item.value is None:
        raise ValueError("unsupported data type")
    value = decode_value(item.value)
    kind = "str" if isinstance(value, str) else value.dtype.name
    if (item.dtype or kind) not in SUPPORTED:
        raise ValueError(f"unsupported data type {item.dtype or kind!r}")
    return value


def write_custom_data(file: h5py.File, entry: str, info: Mapping[str, Any]) -> int:
    """Write the custom data ``info`` carries into ``entry``'s file; the number written."""
    items, refused = read_custom_data(info)
    for why in refused:
        log.warning("%s: %s: not written", entry, why)
    written = 0
    for item in items:
        try:
            _group(file, entry, item.nxpath).create_dataset(item.name, data=_value(item))
            written += 1
        except (ValueError, TypeError, KeyError) as exc:  # as Sardana: a warning, not a failure
            log.warning("%s: cannot write custom data %r at %r: %s", entry, item.name,
                        item.nxpath, exc)
    return written
