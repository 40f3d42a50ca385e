"""Comparing NeXus files with what Sardana's NXscanH5_FileRecorder writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: Items whose value legitimately differs between two writers of the same scan.
WRITER_SPECIFIC = {"program_name", "start_time", "macro_start_time", "end_time"}
ATTRIBUTES_THAT_MATTER = ("NX_class", "signal", "axes", "units")


def nexus_request(paths: Iterable[Path | str]) -> dict[str, Any]:
    """The part of a scan_info asking for these NeXus files (for :func:`tests.publish.publish`)."""
    return {"sardana": {"requested_files": [{"path": str(p), "format": "nexus"} for p in paths]}}


def entries(path: Path | str) -> dict[str, list[int]]:
    """``{entry name: its point numbers}`` of a NeXus file."""
    with h5py.File(path, "r", locking=False) as f:
        return {name: f[f"{name}/measurement/Pt_No"][()].tolist() for name in f}


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


def _not_measured_as_zeros(ours: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """``ours`` with the points Sardana did not measure (the last frame of a stopped scan:
    ``None`` in its record) as NXscanH5_FileRecorder writes them, zeros, where we write NaN
    (kept on purpose, docs/writers.md): a point all NaN in ours and all 0 in the oracle."""
    if ours.dtype.kind != "f" or not ours.ndim or ours.shape != oracle.shape:
        return ours
    points = ours.reshape(len(ours), -1)
    missing = np.isnan(points).all(axis=1) & (oracle.reshape(len(oracle), -1) == 0).all(axis=1)
    if not missing.any():
        return ours
    out = ours.copy()
    out[missing] = 0
    return out


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
                    x = np.asarray(x)
                    np.testing.assert_array_equal(_not_measured_as_zeros(x, y), y.astype(x.dtype),
                                                  err_msg=path)
                else:
                    assert x == y, (path, x, y)
            for attr in ATTRIBUTES_THAT_MATTER:
                if attr in expected.attrs:
                    assert _attr(actual, attr) == _attr(expected, attr), (path, attr)


def _describe(obj) -> str:
    return type(obj).__name__


def _link_kind(group: h5py.Group, name: str) -> str:
    return type(group.get(name, getlink=True)).__name__


def _walk(group: h5py.Group, prefix: str = "") -> dict[str, tuple[str, object]]:
    """Every item under ``group`` by path: (link kind, object or link target)."""
    out: dict[str, tuple[str, object]] = {}
    for name in group:
        path = f"{prefix}/{name}"
        link = group.get(name, getlink=True)
        item = group.get(name)
        if isinstance(link, h5py.SoftLink):
            out[path] = (f"SoftLink to {link.path}", item)
            continue
        out[path] = ("HardLink", item)
        if isinstance(item, h5py.Group):
            out.update(_walk(item, path))
    return out


def _raw(value):
    """A value as comparable data: strings decoded, numeric arrays kept (dtype included)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return np.array([_raw(v) for v in value.ravel().tolist()], dtype=object).reshape(value.shape)
    return value


def _same(x, y) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray) or isinstance(x, np.generic) \
            or isinstance(y, np.generic):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        return x.shape == y.shape and _raw(x).tolist() == _raw(y).tolist()
    return bool(x == y)


def _string_kind(dtype: np.dtype) -> str | None:
    info = h5py.check_string_dtype(dtype)
    return None if info is None else f"{info.encoding}/{'vlen' if info.length is None else 'fixed'}"


def _attribute_differences(path: str, a, b) -> list[str]:
    out = []
    for name in sorted(set(a.attrs) | set(b.attrs)):
        where = f"{path}@{name}"
        if name not in a.attrs or name not in b.attrs:
            out.append(f"{where}: only in {'ours' if name in a.attrs else 'oracle'}")
            continue
        kx = _string_kind(a.attrs.get_id(name).dtype)
        ky = _string_kind(b.attrs.get_id(name).dtype)
        x, y = a.attrs[name], b.attrs[name]
        if kx != ky:
            out.append(f"{where}#dtype: string type {kx} != {ky}")
        elif not _same(_raw(x), _raw(y)):
            out.append(f"{where}#value: {x!r} != {y!r}")
    return out


def _dataset_differences(path: str, a: h5py.Dataset, b: h5py.Dataset) -> list[str]:
    out = []
    if a.compression != b.compression:
        out.append(f"{path}#compression: {a.compression} != {b.compression}")
    if a.is_virtual != b.is_virtual:
        return out + [f"{path}#virtual: {a.is_virtual} != {b.is_virtual}"]
    if a.shape != b.shape:
        return out + [f"{path}#shape: {a.shape} != {b.shape}"]
    if _string_kind(a.dtype) != _string_kind(b.dtype) or \
            (_string_kind(a.dtype) is None and a.dtype != b.dtype):
        return out + [f"{path}#dtype: {a.dtype}/{_string_kind(a.dtype)} != "
                      f"{b.dtype}/{_string_kind(b.dtype)}"]
    if a.is_virtual:
        sources_a = [(s.file_name, s.dset_name) for s in a.virtual_sources()]
        sources_b = [(s.file_name, s.dset_name) for s in b.virtual_sources()]
        return out + ([] if sources_a == sources_b else [f"{path}#virtual: sources differ"])
    x, y = a[()], b[()]
    if not _same(_raw(x), _raw(y)):
        out.append(f"{path}#value: {_raw(x)!r:.200} != {_raw(y)!r:.200}")
    return out


def _item_differences(path: str, mine: tuple[str, object], theirs: tuple[str, object]) -> list[str]:
    (kind_a, x), (kind_b, y) = mine, theirs
    out = [] if kind_a == kind_b else [f"{path}#link: {kind_a} != {kind_b}"]
    if kind_a != "HardLink" and kind_b != "HardLink":
        return out  # the targets are compared where they are
    if x is None or y is None:
        return out + [f"{path}#link: dangling"]
    if type(x) is not type(y):
        return out + [f"{path}#type: {_describe(x)} != {_describe(y)}"]
    if isinstance(x, h5py.Dataset):
        out += _dataset_differences(path, x, y)
    return out + _attribute_differences(path, x, y)


def file_differences(ours: Path, oracle: Path, number: int,
                     allowed: Callable[[str], bool]) -> list[str]:
    """Every difference between two files' root attributes and whole entry ``number``:
    items present in one only, link kinds and targets, dataset dtypes (string encodings
    included), shapes, compression and values bit for bit, every attribute.

    Each difference is ``where: what``; ``where`` is the absolute path, ``@attribute``
    for attributes (``/@name`` for the root's), then ``#link``, ``#type``, ``#dtype``,
    ``#shape``, ``#compression``, ``#virtual`` or ``#value`` when both files have the item.
    ``allowed(where)`` says which differences are kept on purpose."""
    out: list[str] = []
    with h5py.File(ours, "r", locking=False) as a, h5py.File(oracle, "r", locking=False) as b:
        entry = f"entry{number}"
        out += [d.replace("@", "/@", 1) for d in _attribute_differences("", a, b)]
        out += _attribute_differences(f"/{entry}", a[entry], b[entry])
        mine, theirs = _walk(a[entry], f"/{entry}"), _walk(b[entry], f"/{entry}")
        for path in sorted(set(mine) | set(theirs)):
            if path not in mine or path not in theirs:
                out.append(f"{path}: only in {'ours' if path in mine else 'oracle'}")
            else:
                out += _item_differences(path, mine[path], theirs[path])
    return [d for d in out if not allowed(d.split(": ", 1)[0])]
