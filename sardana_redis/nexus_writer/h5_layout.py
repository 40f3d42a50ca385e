"""Turning a blissdata ``h5map`` into HDF5 groups, datasets and links with h5py.

:func:`create_items` walks an ``h5map`` tree and creates what does not exist
yet: groups with their attributes, inline datasets, soft/external links,
virtual datasets; datasets whose value is a *numeric stream* are created
empty and growing, ready for appends (they are returned, by stream name);
datasets of *JSON streams* (Sardana value references) are returned apart,
to be written at the end, since variable-length strings cannot be
appended under SWMR.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
from blissdata.h5map import (
    Dataset,
    ExternalLink,
    Group,
    SoftLink,
    Stream,
    VirtualDataset,
)

from sardana_redis.scan_model import StreamShape

log = logging.getLogger(__name__)

#: gzip level 1 with shuffle: readable everywhere, fast enough for 2D frames.
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_POOL = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="h5-compress")
SCALAR_CHUNK = 4096


@dataclass(frozen=True)
class Compression:
    """Which datasets are compressed, as Sardana's ``DataCompressionRank`` says for
    NXscanH5_FileRecorder: those whose rank (the scan dimension included for measured
    columns, e.g. 1 for a scalar column) is at least ``min_rank``; none when it is negative.
    HDF5 cannot compress scalar (rank 0) datasets. The default compresses every column."""

    min_rank: int = 1

    def applies(self, rank: int) -> bool:
        return 0 <= self.min_rank <= rank and rank > 0


@dataclass
class StreamTargets:
    """Where each stream's points go."""

    numeric: dict[str, list[h5py.Dataset]] = field(default_factory=dict)
    #: JSON streams: (parent group name in file, dataset name, attributes)
    json: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(default_factory=dict)


def _without_nul(value: Any) -> Any:
    """Strings as HDF5 can hold them: each NUL (which HDF5 refuses) becomes U+FFFD."""
    if isinstance(value, bytes):
        return value.replace(b"\x00", "\ufffd".encode())
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return np.frompyfunc(_without_nul, 1, 1)(value)
    return value


def _decode(item: Any) -> Any:
    """An inline value as h5py should store it: strings as variable-length UTF-8 (as
    Sardana's h5py writes ``str``), numbers with their dtype."""
    value = item.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "UO":
        if value.ndim == 0:
            value = value.item() if value.dtype.kind == "U" else value[()]
        else:
            value = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in value.ravel()],
                             dtype=h5py.string_dtype()).reshape(value.shape)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _without_nul(value)


def set_attributes(obj: Any, attributes: Mapping[str, Any]) -> None:
    for name, item in attributes.items():
        value = _decode(item)
        if isinstance(value, bytes):
            value = value.decode()
        obj.attrs[name] = value


def create_items(parent: h5py.Group, group: Group, streams: Mapping[str, StreamShape],
                 targets: StreamTargets, compression: Compression = Compression()) -> None:
    """Create ``group``'s attributes (when missing) and children under ``parent``."""
    for name, value in group.attributes.items():
        if name not in parent.attrs:
            set_attributes(parent, {name: value})
    for name, item in group.children.items():
        if name in parent:
            if isinstance(item, Group) and isinstance(parent.get(name, getlink=True), h5py.HardLink):
                create_items(parent[name], item, streams, targets, compression)
            continue
        if isinstance(item, Group):
            create_items(parent.create_group(name), item, streams, targets, compression)
        elif isinstance(item, SoftLink):
            parent[name] = h5py.SoftLink(item.target_path)
        elif isinstance(item, ExternalLink):
            parent[name] = h5py.ExternalLink(item.target_file, item.target_path)
        elif isinstance(item, VirtualDataset):
            _create_virtual(parent, name, item)
        elif isinstance(item, Dataset):
            _create_dataset(parent, name, item, streams, targets, compression)
        else:
            log.warning("%s/%s: %s items are not written", parent.name, name, type(item).__name__)


def _create_dataset(parent: h5py.Group, name: str, item: Dataset,
                    streams: Mapping[str, StreamShape], targets: StreamTargets,
                    compression: Compression) -> None:
    if not isinstance(item.value, Stream):
        data = _decode(item.value)
        compressed = isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and \
            compression.applies(data.ndim)
        dset = parent.create_dataset(name, data=data, compression="gzip" if compressed else None)
        set_attributes(dset, item.attributes)
        return
    stream = item.value.stream
    shape = streams.get(stream)
    if shape is None and stream in targets.json:
        return  # a JSON stream's dataset, written at the end
    if shape is None:
        log.warning("%s/%s: stream %r is not in the scan", parent.name, name, stream)
        return
    if shape.dtype == "json":
        targets.json.setdefault(stream, []).append((parent.name, name, dict(item.attributes)))
        return
    point = tuple(d for d in shape.shape)
    if not _writable(point):
        log.warning("%s/%s: stream %r of shape %s is not written", parent.name, name, stream, point)
        return
    options = COMPRESSION if compression.applies(1 + len(point)) else {}
    chunks = (1, *point) if point else (SCALAR_CHUNK,)
    dset = parent.create_dataset(name, shape=(0, *point), maxshape=(None, *point),
                                 dtype=shape.dtype, chunks=chunks, **options)
    set_attributes(dset, item.attributes)
    targets.numeric.setdefault(stream, []).append(dset)


def _writable(point: tuple[int, ...]) -> bool:
    """-1: variable; 0 or negative: nonsense from Redis."""
    return all(d > 0 for d in point)


def collect_targets(parent: h5py.Group, group: Group, streams: Mapping[str, StreamShape],
                    targets: StreamTargets) -> None:
    """The targets of the stream datasets ``group`` describes that :func:`create_items`
    made in ``parent`` earlier (a resumed scan); KeyError when one is missing."""
    for name, item in group.children.items():
        if isinstance(item, Group):
            if not isinstance(parent.get(name, getlink=True), h5py.HardLink):
                raise KeyError(f"{parent.name}/{name}")
            collect_targets(parent[name], item, streams, targets)
        elif isinstance(item, Dataset) and isinstance(item.value, Stream):
            stream, shape = item.value.stream, streams.get(item.value.stream)
            if shape is None:
                continue
            if shape.dtype == "json":
                targets.json.setdefault(stream, []).append((parent.name, name, dict(item.attributes)))
            elif _writable(tuple(shape.shape)):
                targets.numeric.setdefault(stream, []).append(parent[name])


def _create_virtual(parent: h5py.Group, name: str, item: VirtualDataset) -> None:
    layout = h5py.VirtualLayout(shape=tuple(item.shape), dtype=np.dtype(item.dtype))
    for source in item.virtual_sources:
        vsource = h5py.VirtualSource(source.src_file, source.src_dataset, shape=tuple(item.shape[1:]))
        start = source.vspace.start
        layout[start[0]] = vsource
    dset = parent.create_virtual_dataset(name, layout, fillvalue=0)
    set_attributes(dset, item.attributes)


def _shuffled_deflate(point: np.ndarray) -> bytes:
    """One chunk as HDF5's shuffle + deflate filters store it (readers need no plugin)."""
    raw = np.ascontiguousarray(point)
    shuffled = raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.tobytes()
    return zlib.compress(shuffled, COMPRESSION["compression_opts"])


def _write_frames(dset: h5py.Dataset, start: int, values: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """Images: compress each frame (one chunk) in parallel threads, write the chunks as they are.

    zlib releases the GIL, so the frames of a batch compress on every core; HDF5's own
    filters would run one frame at a time.
    """
    offset = (0,) * (values.ndim - 1)
    for i, chunk in enumerate(pool.map(_shuffled_deflate, values)):
        dset.id.write_direct_chunk((start + i, *offset), chunk)


def append(targets: StreamTargets, batch: Mapping[str, Any]) -> None:
    """Append a batch of complete rows to the numeric stream datasets."""
    for stream, values in batch.items():
        for dset in targets.numeric.get(stream, ()):
            start = dset.shape[0]
            dset.resize(start + len(values), axis=0)
            if dset.ndim >= 3 and dset.compression == "gzip" and dset.shuffle:
                _write_frames(dset, start, np.asarray(values, dtype=dset.dtype), _POOL)
            else:
                dset[start:] = values
