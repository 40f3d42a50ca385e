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
import types
import zlib
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
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

_deflate: types.ModuleType
try:  # the same deflate streams as zlib's, made 2-4 times faster
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _deflate = zlib

#: Deflate level of non-scalar datasets (HDF5's gzip filter, or chunks deflated here).
GZIP_LEVEL = 1
#: gzip level 1 with shuffle: readable everywhere, fast enough for 2D frames.
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": GZIP_LEVEL,
                               "shuffle": True}
#: Deflate level of scalar columns (a whole chunk compressed once): as small as blisswriter's.
SCALAR_LEVEL = 4
#: Points per chunk of scalar columns: a power of two covering the scan's declared points,
#: within these bounds (SCALAR_CHUNK when the scan does not say).
SCALAR_CHUNK, MIN_SCALAR_CHUNK, MAX_SCALAR_CHUNK = 4096, 16, 131072
#: Skip filters 0 and 1 (shuffle, deflate): a chunk stored as it is.
_UNFILTERED = 0b11


def scalar_chunk(npoints: Any) -> int:
    """Points per chunk of the scalar columns of a scan declaring ``npoints`` (0: unknown)."""
    if not isinstance(npoints, int) or isinstance(npoints, bool) or npoints <= 0:
        return SCALAR_CHUNK
    return min(max(1 << (npoints - 1).bit_length(), MIN_SCALAR_CHUNK), MAX_SCALAR_CHUNK)


@dataclass(frozen=True)
class Compression:
    """Which datasets are compressed, as Sardana's ``DataCompressionRank`` says for
    NXscanH5_FileRecorder: those whose rank (the scan dimension included for measured
    columns, e.g. 1 for a scalar column) is at least ``min_rank``; none when it is negative.
    HDF5 cannot compress scalar (rank 0) datasets. The default compresses every column."""

    min_rank: int = 1
    scalar_chunk: int = SCALAR_CHUNK  #: points per chunk of scalar columns

    def applies(self, rank: int) -> bool:
        return 0 <= self.min_rank <= rank and rank > 0


@dataclass
class StreamTargets:
    """Where each stream's points go."""

    numeric: dict[str, list[h5py.Dataset]] = field(default_factory=dict)
    #: JSON streams: (parent group name in file, dataset name, attributes)
    json: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(default_factory=dict)
    #: compressed scalar datasets, by HDF5 path: their chunks being filled
    packers: dict[str, ChunkPacker] = field(default_factory=dict)


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
            texts = [v.decode() if isinstance(v, bytes) else str(v) for v in value.ravel()]
            value = np.array(texts, dtype=h5py.string_dtype()).reshape(value.shape)
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
            if isinstance(item, Group) and \
                    isinstance(parent.get(name, getlink=True), h5py.HardLink):
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
    chunks = (1, *point) if point else (compression.scalar_chunk,)
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
                targets.json.setdefault(stream, []).append(
                    (parent.name, name, dict(item.attributes)))
            elif _writable(tuple(shape.shape)):
                targets.numeric.setdefault(stream, []).append(parent[name])


def _create_virtual(parent: h5py.Group, name: str, item: VirtualDataset) -> None:
    layout = h5py.VirtualLayout(shape=tuple(item.shape), dtype=np.dtype(item.dtype))
    for source in item.virtual_sources:
        vsource = h5py.VirtualSource(source.src_file, source.src_dataset,
                                     shape=tuple(item.shape[1:]))
        start = source.vspace.start
        layout[start[0]] = vsource
    dset = parent.create_virtual_dataset(name, layout, fillvalue=0)
    set_attributes(dset, item.attributes)


def _shuffled_deflate(point: np.ndarray, level: int = GZIP_LEVEL) -> bytes:
    """One chunk as HDF5's shuffle + deflate filters store it (readers need no plugin)."""
    raw = np.ascontiguousarray(point)
    shuffled = raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.tobytes()
    return _deflate.compress(shuffled, level)


def compression_pool() -> ThreadPoolExecutor:
    """Threads that compress chunks on every core (zlib releases the GIL): one per writer."""
    return ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="h5-compress")


def _write_frames(dset: h5py.Dataset, start: int, values: np.ndarray,
                  pool: Executor | None) -> None:
    """Images: compress each frame (one chunk) in parallel threads, write the chunks as they are.

    zlib releases the GIL, so the frames of a batch compress on every core; HDF5's own
    filters would run one frame at a time.
    """
    offset = (0,) * (values.ndim - 1)
    for i, chunk in enumerate((pool.map if pool else map)(_shuffled_deflate, values)):
        dset.id.write_direct_chunk((start + i, *offset), chunk)


class ChunkPacker:
    """Appends to a compressed scalar dataset chunk by chunk, compressing each chunk once.

    Under SWMR, HDF5 never reuses the file space a rewritten chunk leaves: compressing a
    growing chunk again at every batch would leave its former copies in the file. Whole
    chunks are compressed once (in parallel threads); the points of the last, partial chunk
    wait in memory. :meth:`show` (a scan followed live) writes that partial chunk
    compressed and padded to a fixed size (the deflate filter ignores what follows the end
    of its stream), so that it is rewritten in place each time; that chunk keeps its padded
    size. The dataset's extent is always the points on disk: readers never see unwritten
    points.
    """

    def __init__(self, dset: h5py.Dataset) -> None:
        self.dset = dset
        self.length = dset.chunks[0]
        nbytes = self.length * dset.dtype.itemsize
        self.slot = nbytes + nbytes // 1000 + 64  #: > zlib's deflateBound(nbytes)
        size = dset.shape[0]
        self.start = size - size % self.length  #: first point of the partial chunk
        self.tail = np.asarray(dset[self.start:size])
        self.padded = bool(len(self.tail)) and \
            len(dset.id.read_direct_chunk((self.start,))[1]) == self.slot
        self.shown = len(self.tail)  #: points of the partial chunk on disk

    def append(self, values: Any) -> list[tuple[ChunkPacker, np.ndarray]]:
        """Take ``values``; returns the chunks they complete, to :meth:`write` compressed
        (those of every column of a batch compress together, in parallel)."""
        dset = self.dset
        values = np.asarray(values, dtype=dset.dtype)
        pending = np.concatenate((self.tail, values)) if len(self.tail) else values
        full = len(pending) - len(pending) % self.length
        chunks = [pending[i:i + self.length] for i in range(0, full, self.length)]
        self.tail = pending[full:]
        if not chunks:
            return []
        dset.resize(self.start + full, axis=0)
        if self.padded:  # on disk at its padded size: rewritten in place
            self._write_padded(chunks.pop(0))
            self.start += self.length
            self.padded = False
        self.shown = 0
        return [(self, chunk) for chunk in chunks]

    def write(self, data: bytes) -> None:
        """Write the next whole chunk, compressed."""
        self.dset.id.write_direct_chunk((self.start,), data)
        self.start += self.length

    def show(self) -> None:
        """Put the points of the partial chunk on disk (padded: see the class)."""
        if len(self.tail) > self.shown:
            self.dset.resize(self.start + len(self.tail), axis=0)
            self._write_padded(self.tail)
            self.padded, self.shown = True, len(self.tail)

    def close(self) -> None:
        """At the end: the partial chunk (compressed, at its padded size if it has one)."""
        if not len(self.tail) or len(self.tail) == self.shown:
            return
        if self.padded:
            self.show()
            return
        self.dset.resize(self.start + len(self.tail), axis=0)
        self.dset.id.write_direct_chunk((self.start,), _shuffled_deflate(self._whole(self.tail),
                                                                         SCALAR_LEVEL))
        self.shown = len(self.tail)

    def _whole(self, values: np.ndarray) -> np.ndarray:
        chunk = np.zeros(self.length, dtype=self.dset.dtype)
        chunk[:len(values)] = values
        return chunk

    def _write_padded(self, values: np.ndarray) -> None:
        raw = self._whole(values)
        data = zlib.compress(raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.tobytes(), 1)
        self.dset.id.write_direct_chunk((self.start,), data + bytes(self.slot - len(data)))


def _packed(dset: h5py.Dataset) -> bool:
    return dset.ndim == 1 and dset.compression == "gzip" and bool(dset.shuffle)


def append(targets: StreamTargets, batch: Mapping[str, Any], show: bool = True,
           pool: Executor | None = None) -> None:
    """Append a batch of complete rows to the numeric stream datasets; ``show``: make every
    point visible to readers now (a live scan), else compressed scalar columns may keep the
    points of their last partial chunk until more come or :func:`close_packed`. ``pool``
    compresses chunks in parallel (:func:`compression_pool`; None: in this thread)."""
    whole: list[tuple[ChunkPacker, np.ndarray]] = []
    for stream, values in batch.items():
        for dset in targets.numeric.get(stream, ()):
            if _packed(dset):
                packer = targets.packers.get(dset.name)
                if packer is None or packer.dset is not dset:
                    packer = targets.packers[dset.name] = ChunkPacker(dset)
                whole += packer.append(values)
                continue
            start = dset.shape[0]
            dset.resize(start + len(values), axis=0)
            if dset.ndim >= 3 and dset.compression == "gzip" and dset.shuffle:
                _write_frames(dset, start, np.asarray(values, dtype=dset.dtype), pool)
            else:
                dset[start:] = values
    compress = partial(_shuffled_deflate, level=SCALAR_LEVEL)
    chunks = [chunk for _, chunk in whole]
    for (packer, _), data in zip(whole, pool.map(compress, chunks) if pool and len(chunks) > 1
                                 else map(compress, chunks), strict=True):
        packer.write(data)
    if show:
        for packer in targets.packers.values():
            packer.show()


def close_packed(targets: StreamTargets) -> None:
    """Write what the compressed scalar columns hold back (the end of the scan)."""
    for packer in targets.packers.values():
        packer.close()


def rows_on_disk(targets: StreamTargets) -> int | None:
    """Points every stream dataset holds (None without any)."""
    sizes = [d.shape[0] for ds in targets.numeric.values() for d in ds]
    return min(sizes) if sizes else None
