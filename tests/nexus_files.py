"""Comparing NeXus files with what Sardana's NXscanH5_FileRecorder writes."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

#: Items whose value legitimately differs between two writers of the same scan.
WRITER_SPECIFIC = {"program_name", "start_time", "macro_start_time", "end_time"}
ATTRIBUTES_THAT_MATTER = ("NX_class", "signal", "axes", "units")


def _items(group: h5py.Group, prefix: str = "") -> dict[str, h5py.Dataset | h5py.Group]:
    out = {}
    for name in group:
        item = group.get(name)
        if item is None:  # dangling link
            continue
        path = f"{prefix}/{name}"
        out[path] = item
        if isinstance(item, h5py.Group) and group.get(name, getlink=True).__class__ is h5py.HardLink:
            out.update(_items(item, path))
    return out


def _value(dset: h5py.Dataset):
    value = dset[()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    return value


def _attr(obj, name):
    value = obj.attrs.get(name)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    return value


def assert_same_entry(ours: Path, oracle: Path, number: int, skip: set[str] = frozenset()) -> None:
    """Every dataset of the oracle's entry exists in ours with equal values, and the
    attributes that matter are equal."""
    with h5py.File(ours, "r", locking=False) as a, h5py.File(oracle, "r", locking=False) as b:
        entry = f"entry{number}"
        ours_items, oracle_items = _items(a[entry]), _items(b[entry])
        for path, expected in oracle_items.items():
            name = path.rsplit("/", 1)[-1]
            if name in WRITER_SPECIFIC or name in skip:
                continue
            assert path in ours_items, f"{path} missing in {ours}"
            actual = ours_items[path]
            if isinstance(expected, h5py.Dataset):
                assert isinstance(actual, h5py.Dataset), path
                x, y = _value(actual), _value(expected)
                if isinstance(y, np.ndarray) and y.dtype.kind in "fiub":
                    np.testing.assert_array_equal(np.asarray(x), y.astype(np.asarray(x).dtype), err_msg=path)
                else:
                    assert x == y, (path, x, y)
            for attr in ATTRIBUTES_THAT_MATTER:
                if attr in expected.attrs:
                    assert _attr(actual, attr) == _attr(expected, attr), (path, attr)
