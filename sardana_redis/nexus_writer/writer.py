"""Writing one blissdata scan into NeXus/HDF5 files (the NeXus writer's scan handler).

The layout comes from the scan's ``h5maps`` (one per requested ``.h5``/``.nxs``
file, published by the RedisBlissRecorder); a scan without one gets a plain
``entry<N>/measurement`` layout of its streams. Files this writer creates are
HDF5 1.10+ files in **SWMR** mode while a scan is written: another process can
open them with ``h5py.File(path, "r", swmr=True)`` and see the datasets grow.
Existing files created without SWMR support get the scan appended without it.
At the end, the file is reopened normally for what SWMR cannot do: end time,
end reason, strings of referenced values and their virtual datasets.
An existing entry is never overwritten.

Every open takes and respects HDF5's file locks (:data:`LOCKING`): a file another
program holds open (a reader such as silx view, PyMca or h5py, with or without SWMR) is
waited for, at the start of a scan and for the reopening at its end, and the scan is
written whole once the reader lets go (see ``docs/writers.md``, "Files held open by
readers").
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pydantic
from blissdata.h5map import Dataset, Group, Stream

from sardana_redis.following.file_writer import FileScanWriter, unwritable
from sardana_redis.following.follower import ScanJob, is_disk_full
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.following.paths import ConfinedFile, UnsafePath, confine
from sardana_redis.following.scan_rows import stream_shapes
from sardana_redis.nexus_writer.custom_data import write_custom_data
from sardana_redis.nexus_writer.h5_layout import (
    Compression,
    StreamTargets,
    append,
    close_packed,
    collect_targets,
    compression_pool,
    create_items,
    rows_on_disk,
    scalar_chunk,
    set_attributes,
)
from sardana_redis.nexus_writer.journal import JournaledFile, undo_leftover
from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected, StreamShape, sanitize_dataset_name

log = logging.getLogger(__name__)

#: A Sardana value reference to an HDF5 dataset: h5file:///path/file.h5[::/dataset]
_H5_REFERENCE = re.compile(r"^h5file://(?P<file>/[^:]+)(::(?P<dataset>.+))?$")

#: HDF5 file locking of every open: locks are taken and respected, so that no reader is
#: ever written under (it could crash or read garbage) and no other writer interleaves;
#: ignored only on file systems without locks (some NFS mounts). Never ``False``.
LOCKING = "best-effort"


def is_held(exc: BaseException) -> bool:
    """True when HDF5 could not lock the file: another program has it open (h5py raises
    HDF5's EAGAIN as :class:`BlockingIOError`)."""
    return isinstance(exc, BlockingIOError)


def why_waiting(exc: BaseException) -> str:
    """Why a file cannot be opened now, to wait for (see ``FileScanWriter.wait_for_file``)."""
    return "held open by another program" if is_held(exc) else unwritable(exc)


@dataclass
class AbandonedFiles:
    """The open files of writes that failed for lack of space, and their paths (one set per
    writer). After such a failure HDF5 can crash the process when the file's objects are
    closed or freed, or when the same file is opened again while they live: they are kept
    here, never touched again (a small leak per failure), and the file gets a new inode
    before it is written again (:func:`_reopenable`)."""

    files: list[Any] = field(default_factory=list)
    paths: set[Path] = field(default_factory=set)


def _copy_file(confined: ConfinedFile, fill: Callable[[int, int], None]) -> None:
    """Replace the file of ``confined`` by a new one (a new inode) that ``fill(folder, fd)``
    writes, in the same folder, through the folder's handle."""
    folder, _ = confined.open_folder(create=False)
    tmp = f".{confined.name}.recovering"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=folder)
        try:
            fill(folder, fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, confined.name, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    finally:
        os.close(folder)
    confined.replaced()


def _reopenable(confined: ConfinedFile, abandoned: AbandonedFiles) -> None:
    """Give a file this writer abandoned after a full disk a new inode (a copy, with what
    its undo journal records undone), so that HDF5 opens it afresh instead of sharing its
    broken state (and its lock)."""
    if confined.path not in abandoned.paths:
        return
    log.info("%s: written again after a full disk", confined.path)
    src_folder, src = confined.open(os.O_RDONLY)

    def fill(folder: int, fd: int) -> None:
        offset = 0
        while chunk := os.pread(src, 1 << 20, offset):
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
        st = os.fstat(src)
        undo_leftover(folder, confined.name, fd, confined.path, identity=(st.st_dev, st.st_ino))

    try:
        _copy_file(confined, fill)
    finally:
        os.close(src)
        os.close(src_folder)
    abandoned.paths.discard(confined.path)


def fd_path(fd: int) -> str:
    """A path naming the very file an open handle is (Linux' /proc/self/fd)."""
    return f"/proc/self/fd/{fd}"


#: The byte of an HDF5 (v2+) superblock with its status flags, and the flags meaning "left
#: open for writing" (bit 0) and "for SWMR writing" (bit 2).
_FLAGS_AT, _OPEN_FOR_WRITE = 11, 0x05


def left_open(fd: int) -> bool:
    """True when the HDF5 file ``fd`` is marked open for (SWMR) writing: left so by a
    writer that crashed (the caller holds the file's lock: nobody else writes it)."""
    head = os.pread(fd, 12, 0)
    return len(head) == 12 and head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] >= 2 and \
        bool(head[_FLAGS_AT] & _OPEN_FOR_WRITE)


def recover_swmr_file(confined: ConfinedFile, fd: int) -> None:
    """Make a file left marked "open for SWMR write" by a crashed writer usable again.

    HDF5 refuses to open such a file for writing (``h5clear -s`` is the command
    line fix); it can still be read in SWMR mode, so its content is copied into
    a new file that replaces it. The caller holds the file's lock (``fd``).
    """
    log.warning("%s was left open for SWMR write by a crashed writer: recovering it",
                confined.path)

    def fill(_folder: int, tmp: int) -> None:
        with h5py.File(fd_path(fd), "r", swmr=True, locking=False) as src, \
                h5py.File(fd_path(tmp), "w", libver="latest", locking=False) as dst:
            for name, value in src.attrs.items():
                dst.attrs[name] = value
            for name in src:
                src.copy(name, dst, name=name)

    _copy_file(confined, fill)


class NexusFile:
    """One NeXus file of a scan, through its phases: changes outside SWMR (the entry's
    creation, its end items, files without SWMR support) through an undo journal
    (:class:`~sardana_redis.nexus_writer.journal.JournaledFile`), the points in SWMR mode.
    Every open goes through the folders' handles and meets the file the scan started
    with (:class:`~sardana_redis.following.paths.ConfinedFile`); a reader holding the
    file is waited for (``wait``: :meth:`FileScanWriter.wait_for_file`)."""

    def __init__(self, path: Path, roots: list[Path],
                 wait: Callable[[Path, Callable[[], Any]], Any], abandoned: AbandonedFiles) -> None:
        self.path = path
        self.abandoned = abandoned
        self.confined = ConfinedFile(path, roots)
        self.wait = wait
        self.journal: JournaledFile | None = None
        self.file: h5py.File | None = None
        self._fd = -1  #: the handle the SWMR-mode file was opened through

    def opened(self) -> h5py.File:
        """The open file (ValueError when closed)."""
        if self.file is None:
            raise ValueError(f"{self.path} is not open")
        return self.file

    def open_journaled(self, phase: str) -> h5py.File:
        """The file opened for changes outside SWMR (recovered first when a crashed writer
        left it open for SWMR write)."""
        _reopenable(self.confined, self.abandoned)

        def attempt() -> tuple[JournaledFile, h5py.File]:
            journal = JournaledFile(self.confined, phase)
            try:
                if left_open(journal.fd):
                    recover_swmr_file(self.confined, journal.fd)
                    journal.abort()
                    journal = JournaledFile(self.confined, phase)
                journal.start()
                return journal, h5py.File(journal, "r+" if journal.size else "w", libver="latest")
            except BaseException:
                journal.abort()
                raise

        self.journal, self.file = self.wait(self.path, attempt)
        return self.file

    def start_swmr(self) -> bool:
        """Commit the changes so far and go on in SWMR mode; False (changes still
        journaled) for a file created without SWMR support."""
        if self.opened().id.get_create_plist().get_version()[0] < 3:
            log.info("%s: no SWMR (an HDF5 file without SWMR support); readers see the scan "
                     "when it ends", self.path)
            return False
        self.commit()

        def attempt() -> h5py.File:
            folder, fd = self.confined.open(os.O_RDWR)
            os.close(folder)
            try:
                file = h5py.File(fd_path(fd), "a", libver="latest", locking=LOCKING)
                try:
                    self.confined.check(file.id.get_vfd_handle())
                except BaseException:
                    file.close()
                    raise
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return file

        self.file = self.wait(self.path, attempt)
        self.file.swmr_mode = True
        return True

    def open_end(self) -> h5py.File:
        """The file for its end items: reopened outside SWMR, journaled, when it was in SWMR."""
        if self.journal is None:
            self._close_swmr()
            self.open_journaled("END")
        return self.file

    def commit(self) -> None:
        """Close the file and make its journaled changes durable."""
        file, journal = self.file, self.journal
        if file is None or journal is None:
            raise ValueError(f"{self.path} has no journaled changes open")
        file.close()
        self.file = None
        journal.commit()
        self.journal = None

    def _close_swmr(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Close, undoing journaled changes not committed (an error)."""
        try:
            self._close_swmr()
        finally:
            if self.journal is not None:
                self.journal.abort()
                self.journal = None

    def abandon(self) -> None:
        """After a full disk: never touch the HDF5 objects again (see :class:`AbandonedFiles`);
        the journal stays for the next open, the file's lock goes."""
        self.abandoned.files.append(self.file)
        self.abandoned.paths.add(self.path)
        if self.journal is not None:
            self.journal.release()


def scan_layouts(scan: Any, roots: list[Path]) -> dict[Path, Group]:
    """The scan's h5maps, by confined file path (untrusted input, checked)."""
    h5maps = scan.info.get("h5maps", {}) if isinstance(scan.info, Mapping) else {}
    if not isinstance(h5maps, Mapping):
        raise ScanRejected("scan_info.h5maps is not a mapping")
    layouts = {}
    for path, tree in h5maps.items():
        try:
            layouts[confine(path, roots)] = Group.model_validate(tree)
        except UnsafePath:
            continue  # a file this writer does not write
        except pydantic.ValidationError as exc:
            raise ScanRejected(f"invalid h5map for {path}: {exc.errors()[0]['msg']}") from None
    return layouts


def dataset_names(streams: Iterable[str]) -> dict[str, str]:
    """A distinct NeXus dataset name per stream: sanitised, ``_2``, ``_3``... on a clash
    (``ct 1`` and ``ct_1`` both sanitise to ``ct_1``; neither may be dropped)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for i, stream in enumerate(streams):
        base = sanitize_dataset_name(stream) or f"stream{i}"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        names[stream] = name
    return names


def default_layout(scan: Any, shapes: Mapping[str, StreamShape]) -> Group:
    """``entry<N>`` with a ``measurement`` collection of every stream: for scans without h5maps."""
    title = scan.info.get("title", "") if isinstance(scan.info, Mapping) else ""
    measurement = {dataset: Dataset(value=Stream(stream=name))
                   for name, dataset in dataset_names(shapes).items()}
    entry = Group(attributes={"NX_class": "NXentry"}, children={
        "title": Dataset(value=str(title)),
        "measurement": Group(attributes={"NX_class": "NXcollection"}, children=measurement),
    })
    return Group(attributes={"NX_class": "NXroot"}, children={f"entry{scan.number}": entry})


def _with_end(layout: Group, end_time: Any, end_reason: str) -> Group:
    """A :func:`default_layout` with its entry's end items (h5maps carry their own)."""
    (name, entry), = layout.children.items()
    if not isinstance(entry, Group):
        raise TypeError(f"{name} of a default layout is not a group")
    children = {**entry.children, "end_time": Dataset(value=end_time.isoformat()),
                "end_reason": Dataset(value=end_reason)}
    return Group(attributes=layout.attributes,
                 children={name: Group(attributes=entry.attributes, children=children)})


class _OpenScan:
    """One file being written for one scan (``nexus``: it, opened for changes)."""

    def __init__(self, nexus: NexusFile, layout: Group, shapes: Mapping[str, StreamShape],
                 resuming: bool, start: int = 0, compression: Compression = Compression(),
                 pool: Executor | None = None) -> None:
        self.path = nexus.path
        self.layout = layout
        self.pool = pool  #: compresses chunks in parallel (the writer's)
        self._next_show = 0.0
        self.nexus = nexus
        try:
            self.file = nexus.opened()
            self.targets = StreamTargets()
            #: the entry is already whole (Redis came back from an older snapshot): kept as is
            self.complete = resuming and all(f"{entry}/end_time" in self.file
                                             for entry in layout.children)
            if self.complete:
                self.start = start
                return
            self.start = self._resume(layout, shapes, start) if resuming else 0
            if not self.start:
                for entry in layout.children:
                    if entry in self.file:
                        if not resuming:
                            raise ScanRejected(
                                f"{entry} already exists in {self.path}: never overwritten")
                        del self.file[entry]
                        log.info("resuming in %s: %s written again", self.path, entry)
                _file_attributes(self.file, self.path)
                create_items(self.file, layout, shapes, self.targets, compression)
            names = {s: [d.name for d in ds] for s, ds in self.targets.numeric.items()}
            self.swmr = nexus.start_swmr()
            if self.swmr:  # the same datasets, in the file reopened in SWMR mode
                self.file = nexus.opened()
                self.targets.numeric = {s: [self.file[n] for n in ns] for s, ns in names.items()}
        except BaseException as exc:
            self.close(exc)
            raise

    def _resume(self, layout: Group, shapes: Mapping[str, StreamShape], start: int) -> int:
        """Go on after the ``start`` points a previous owner recorded as on disk (the memory
        tracker may have freed them from Redis): the datasets are cut to ``start`` rows.
        Returns 0 (write the entry again) when the file does not hold them."""
        if not start or not all(entry in self.file for entry in layout.children):
            return 0
        targets = StreamTargets()
        try:
            collect_targets(self.file, layout, shapes, targets)
        except KeyError:
            return 0
        if any(d.shape[0] < start for ds in targets.numeric.values() for d in ds):
            return 0
        self.targets = targets
        self.cut(start)
        log.info("resuming scan in %s after its %d points on disk", self.path, start)
        return start

    def cut(self, rows: int) -> None:
        """Keep the first ``rows`` points of every stream dataset."""
        for datasets in self.targets.numeric.values():
            for dset in datasets:
                dset.resize(rows, axis=0)
        self.targets.packers.clear()
        self.start = rows

    def append(self, batch: Mapping[str, Any], live: bool) -> None:
        """Append complete rows (an empty batch: the scan is quiet); ``live``: the reader
        has caught up with a running scan, readers should see every point soon (at most
        every :data:`SHOW_EVERY` seconds: see :class:`~.h5_layout.ChunkPacker`)."""
        show = live and time.monotonic() >= self._next_show
        if show:
            self._next_show = time.monotonic() + SHOW_EVERY
        if batch or show:
            append(self.targets, batch, show, self.pool)
            self.file.flush()

    def rows_on_disk(self) -> int | None:
        return rows_on_disk(self.targets)

    def finish(self, final_layout: Group, json_values: Mapping[str, list],
               scan_info: Mapping) -> None:
        """Reopen without SWMR (journaled; waiting while a reader holds the file) and add
        what SWMR cannot: end items, strings, references; then commit."""
        close_packed(self.targets)
        self.file = f = self.nexus.open_end()
        create_items(f, final_layout, {}, StreamTargets(json=dict(self.targets.json)))
        for stream, places in self.targets.json.items():
            values = json_values.get(stream, [])
            for group_name, name, attributes in places:
                _write_references(f[group_name], name, stream, values, scan_info)
                set_attributes(f[group_name][name], attributes)
        for entry in final_layout.children:
            write_custom_data(f, entry, scan_info)
        self.nexus.commit()

    def close(self, error: BaseException | None = None) -> None:
        """Close the file (undoing uncommitted changes); after a full disk (``error``),
        abandon it instead (see :class:`AbandonedFiles`): the scan is written again once
        there is room."""
        if error is not None and is_disk_full(error):
            self.nexus.abandon()
        else:
            self.nexus.close()


def _file_attributes(file: h5py.File, path: Path) -> None:
    """The NXroot attributes of a new file, as NXscanH5_FileRecorder sets them on the files
    it creates (the NX_class and creator come with the layout)."""
    if "NX_class" in file.attrs:
        return
    file.attrs["file_name"] = str(path)
    file.attrs["file_time"] = datetime.datetime.now().isoformat()
    file.attrs["HDF5_Version"] = h5py.version.hdf5_version
    file.attrs["h5py_version"] = h5py.version.version


#: Seconds between two showings of the points held back by compressed scalar columns of a
#: scan followed live, and the memory those points may take (bytes, all columns).
SHOW_EVERY = 0.5
HELD_BACK_BUDGET = 64 << 20


def compression_of(scan_info: Any, shapes: Mapping[str, StreamShape]) -> Compression:
    """The compression the scan asks for: Sardana's ``DataCompressionRank`` when the user
    set it (``scan_info["sardana"]["data_compression_rank"]``), else every column; scalar
    chunks sized for the points the scan declares, within :data:`HELD_BACK_BUDGET`."""
    published = PublishedScan.parse(scan_info)
    rank = published.data_compression_rank
    scalars = sum(1 for s in shapes.values() if s.dtype != "json" and not s.shape)
    chunk = scalar_chunk(published.info.get("npoints"))
    while chunk > 16 and chunk * 8 * scalars > HELD_BACK_BUDGET:
        chunk //= 2
    if rank is not None:
        return Compression(min_rank=rank, scalar_chunk=chunk)
    return Compression(scalar_chunk=chunk)


def _column_meta(scan_info: Mapping, stream: str) -> Mapping:
    column = PublishedScan.parse(scan_info).column(stream)
    return column.meta if column is not None else {}


def _image_layout(first: re.Match, column: Mapping) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of one referenced image: those of the first referenced dataset when
    it can be read, else those the column declares when numeric 2D (Sardana declares
    ``str`` for referenced channels), else None. Only a regular file is opened (a FIFO
    named by a hostile reference would block)."""
    try:
        if not os.path.isfile(first["file"]):
            raise FileNotFoundError(first["file"])
        with h5py.File(first["file"], "r", locking=False) as src:
            dset = src[first["dataset"] or "dataset"]
            if isinstance(dset, h5py.Dataset) and dset.ndim == 2 and dset.dtype.kind in "biuf":
                return dset.shape, dset.dtype
    except (OSError, KeyError, ValueError, TypeError):
        pass
    shape, dtype = column.get("shape"), column.get("dtype")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        return None
    if isinstance(shape, list) and len(shape) == 2 and \
            all(isinstance(d, int) and d > 0 for d in shape) and dtype.kind in "biuf":
        return tuple(shape), dtype
    return None


def _write_references(group: h5py.Group, name: str, stream: str, values: list,
                      scan_info: Mapping) -> None:
    """Referenced values: a virtual dataset (points, height, width) over the detector's
    files when every value is an ``h5file://`` reference, as Sardana builds it; else the
    reference strings."""
    strings = [v if isinstance(v, str) else str(v) for v in values]
    matches = [m for m in map(_H5_REFERENCE.match, strings) if m is not None]
    image = _image_layout(matches[0], _column_meta(scan_info, stream)) \
        if strings and len(matches) == len(strings) else None
    if image is not None:
        shape, dtype = image
        try:
            layout = h5py.VirtualLayout(shape=(len(strings), *shape), dtype=dtype)
            for i, m in enumerate(matches):
                layout[i] = h5py.VirtualSource(m["file"], m["dataset"] or "dataset", shape=shape)
            group.create_virtual_dataset(name, layout,
                                         fillvalue=-np.inf if dtype.kind == "f" else 0)
            return
        except (TypeError, ValueError) as exc:
            log.warning("%s/%s: no virtual dataset (%s), references kept", group.name, name, exc)
    group.create_dataset(name, data=np.array(strings, dtype=h5py.string_dtype()))


def _json_before(scan: Any, stream: str, start: int) -> list:
    """The first ``start`` values of a JSON stream (references, written at the end), for a
    resumed scan; those the memory tracker already freed become empty strings."""
    if not start:
        return []
    try:
        return list(scan.streams[stream][0:start])
    except IndexError:
        log.error("Scan %s: the first %d values of %r are gone from Redis: written as empty "
                  "strings", scan.key, start, stream)
        return [""] * start


class NexusScanWriter(FileScanWriter):
    """The NeXus writer's :class:`~sardana_redis.following.follower.ScanHandler`."""

    FORMAT = "nexus"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = compression_pool()
        self.abandoned = AbandonedFiles()

    def check(self, scan: Any, files: list[Path]) -> None:
        scan_layouts(scan, self.roots)  # refuse a malformed h5map before touching files

    def write_scan(self, job: ScanJob, scan: Any, files: list[Path]) -> DoneRecord | None:
        shapes = stream_shapes(scan)
        layouts = scan_layouts(scan, self.roots)
        progress = job.ledger.progress(scan.key)
        saved = job.ledger.points(scan.key)
        opened: list[NexusFile] = []  # not handed to an _OpenScan yet
        outs = []
        error: BaseException | None = None

        def wait(path: Path, attempt: Callable[[], Any]) -> Any:
            return self.wait_for_file(job, path, attempt, why_waiting)

        try:
            for path in files:  # every file first: a reader may hold one (nothing written yet)
                opened.append(NexusFile(path, self.roots, wait, self.abandoned))
                opened[-1].open_journaled("CREATE")
            job.ledger.set_progress(scan.key, {str(p): 1 for p in files})
            while opened:
                nexus = opened.pop(0)
                layout = layouts.get(nexus.path) or default_layout(scan, shapes)
                outs.append(_OpenScan(nexus, layout, shapes, resuming=str(nexus.path) in progress,
                                      start=saved, compression=compression_of(scan.info, shapes),
                                      pool=self.pool))
                log.info("recording into '%s'", nexus.path)
            if all(out.complete for out in outs):
                log.info("Scan #%d is already whole in %s: left as it is", scan.number,
                         ", ".join(str(o.path) for o in outs))
                return DoneRecord("written", "already whole in its files",
                                  tuple(str(o.path) for o in outs), saved)
            start = min(out.start for out in outs)
            for out in outs:
                if out.start > start:
                    out.cut(start)
            job.rows_written = start
            numeric = sorted({s for o in outs for s in o.targets.numeric})
            json_streams = sorted({s for o in outs for s in o.targets.json})
            json_values = {s: _json_before(scan, s, start) for s in json_streams}
            rows = self.scan_rows(scan, numeric + json_streams, start)
            for batch in rows.batches(stop=job.stop):
                job.points_seen = rows.points_seen
                for stream in json_streams:
                    json_values[stream].extend(batch.pop(stream, ()))
                for out in outs:
                    out.append(batch, live=rows.caught_up_live)
                on_disk = [out.rows_on_disk() for out in outs]
                job.rows_written = min((r for r in on_disk if r is not None),
                                       default=rows.rows_read)
            if job.stop.is_set():
                return None
            end_time, end_reason = self.wait_end(scan, job.stop)
            final = scan_layouts(scan, self.roots)  # at close, with end_time/end_reason
            for out in outs:
                layout = final.get(out.path) or _with_end(out.layout, end_time, end_reason)
                out.finish(layout, json_values, scan.info)
        except BaseException as exc:
            error = exc  # a full disk's: the files are abandoned, not closed (AbandonedFiles)
            raise
        finally:
            for nexus in opened:
                nexus.close()
            for out in outs:
                out.close(error)
        for out in outs:
            log.info("finished recording to '%s' (scan #%d, %d points, %s)",
                     out.path, scan.number, rows.rows_read, end_reason)
        return DoneRecord("written", f"end reason {end_reason}",
                          tuple(str(o.path) for o in outs), rows.rows_read)
