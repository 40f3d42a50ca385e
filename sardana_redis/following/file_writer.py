"""What every file-writing scan handler shares: which files, confinement, locks, the end.

:class:`FileScanWriter` is a :class:`~sardana_redis.following.follower.ScanHandler`
template: it waits for the scan to be prepared, picks its files (those the
scan requested in the writer's format, or the service's default pattern),
confines them to the root folders, takes the file locks (one scan per file
at a time), lets the subclass write, and releases the locks unless the
write was interrupted (the scan keeps them for its resume). A file another
program holds (:meth:`FileScanWriter.wait_for_file`) is waited for, never a
failed scan.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState

from sardana_redis.following.file_queue import FileQueue
from sardana_redis.following.follower import ScanJob
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.following.limits import ScanLimits
from sardana_redis.following.paths import OutsideRoots, UnsafePath, confine, expand_pattern
from sardana_redis.following.scan_rows import ScanRows, stream_shapes, wait_prepared
from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected, parse_time

log = logging.getLogger(__name__)

#: Seconds to wait for a scan's CLOSED state (its end_reason) once its streams ended.
CLOSE_WAIT = 10.0
#: Seconds between two tries to open a file another program holds.
HELD_POLL = 1.0

T = TypeVar("T")


class Interrupted(Exception):
    """``job.stop`` was set while the scan waited for a file: it is left for a resume."""


def unwritable(exc: BaseException) -> str:
    """Why a file cannot be opened for writing *now* (waited for), or "" (an error)."""
    if isinstance(exc, PermissionError):
        return f"not writable ({exc.strerror or exc})"
    return ""


def scan_fields(scan: Any) -> dict[str, Any]:
    """Identity fields of a scan, for default file patterns."""
    published = PublishedScan.parse(scan.info)
    fields = {k: getattr(scan, k, None) for k in
              ("session", "proposal", "collection", "dataset", "name", "number")}
    fields["beamline"] = published.beamline
    fields["date"] = parse_time(published.info.get("start_time")).strftime("%Y%m%d")
    return fields


class FileScanWriter:
    """Template of a scan handler writing files of one format under root folders."""

    FORMAT: ClassVar[str] = ""  #: "spec" or "nexus"

    def __init__(self, roots: Sequence[Path], default_pattern: str | None = None,
                 file_lock_poll: float = 0.2, held_poll: float = HELD_POLL,
                 limits: ScanLimits | None = None) -> None:
        if not roots:
            raise ValueError("a writer needs at least one root folder")
        relative = [str(r) for r in roots if not Path(r).is_absolute()]
        if relative:
            raise ValueError(f"root folders must be absolute: {', '.join(relative)}")
        self.roots = [Path(r) for r in roots]
        self.default_pattern = default_pattern
        self.file_lock_poll = file_lock_poll
        self.held_poll = held_poll
        self.limits = limits or ScanLimits()
        self._queue = FileQueue()

    def candidate_files(self, scan: Any) -> list[str]:
        """The files this scan asks for (before confinement)."""
        files = PublishedScan.parse(scan.info).files_of(self.FORMAT)
        if not files and self.default_pattern:
            files = [expand_pattern(self.default_pattern, scan_fields(scan))]
        return files

    def targets(self, scan: Any) -> list[Path]:
        """The confined files this scan goes to (may be empty: nothing to write).

        A file outside every root is left out (another writer's, or a mistake: logged);
        a scan with only such files, or with a hostile path (``..``, control
        characters, relative), is rejected.
        """
        files, outside = [], []
        for name in self.candidate_files(scan):
            try:
                files.append(confine(name, self.roots))
            except OutsideRoots as exc:
                outside.append(str(exc))
            except UnsafePath as exc:
                raise ScanRejected(str(exc)) from None
        if outside and not files:
            raise ScanRejected("; ".join(outside))
        for reason in outside:
            log.warning("Scan %s: not written: %s", scan.key, reason)
        return list(dict.fromkeys(files))

    def handle(self, job: ScanJob) -> DoneRecord | None:
        try:
            return self._handle(job)
        finally:
            self._queue.leave(job.scan.key)
            job.queued.set()

    def _handle(self, job: ScanJob) -> DoneRecord | None:
        scan = wait_prepared(job.store, job.scan, stop=job.stop)
        if scan is None:
            return None
        files = self.targets(scan)
        job.files = tuple(str(p) for p in files)
        self._queue.join(scan.key, job.files)
        job.queued.set()
        if not files:
            return DoneRecord("skipped", f"no {self.FORMAT} file requested and no default pattern")
        self.limits.check_count(len(scan.streams))  # before looking at each of them
        self.limits.check(stream_shapes(scan), scan.info)
        self.check(scan, files)
        if not self._lock_files(job, scan.key, files):
            return None
        try:
            return self.write_scan(job, scan, files)
        except Interrupted:
            return None
        finally:
            if not job.stop.is_set():  # else the locks stay with the scan, for its resume
                for path in files:
                    job.ledger.unlock_file(str(path), scan.key)

    def check(self, scan: Any, files: list[Path]) -> None:
        """Raise :class:`ScanRejected` before any file is touched (default: accept)."""

    def scan_rows(self, scan: Any, names: list[str], start: int) -> ScanRows:
        """The complete rows of ``names`` from row ``start`` on, read within the limits."""
        return ScanRows(scan, names, start=start, budget=self.limits.read_budget,
                        max_points=self.limits.max_points)

    def write_scan(self, job: ScanJob, scan: Any, files: list[Path]) -> DoneRecord | None:
        """Write the scan into ``files``; None when ``job.stop`` interrupted it."""
        raise NotImplementedError

    def _lock_files(self, job: ScanJob, key: str, files: list[Path]) -> bool:
        """Wait until this scan owns every file: scans are written one after the other,
        in the order they were created (:mod:`.file_queue`)."""
        while not self._queue.my_turn(key, map(str, files)):
            if job.stop.wait(self.file_lock_poll):
                return False
        for path in files:
            while not job.ledger.lock_file(str(path), key):
                if job.stop.wait(self.file_lock_poll):
                    return False
        return True

    def wait_for_file(self, job: ScanJob, path: Path, attempt: Callable[[], T],
                      why: Callable[[BaseException], str] = unwritable) -> T:
        """``attempt()`` (opening ``path``), tried again every ``held_poll`` seconds for as
        long as it fails with an error ``why`` explains (e.g. "held open by another
        program"; "" for an error, raised): meanwhile the job says ``waiting for PATH: WHY``
        (Tango Status) and the log says it once per wait (and reason), at WARNING, then at
        INFO when writing goes on. Raises :class:`Interrupted` when ``job.stop`` is set."""
        since = None
        try:
            while True:
                try:
                    result = attempt()
                except Exception as exc:
                    reason = why(exc)
                    if not reason:
                        raise
                    since = since or time.monotonic()
                    if job.waiting != (waiting := f"waiting for {path}: {reason}"):
                        job.waiting = waiting
                        log.warning("Scan %s #%s: %s", job.scan.key,
                                    getattr(job.scan, "number", "?"), waiting)
                        log.debug("%s: %s", path, exc)
                    if job.stop.wait(self.held_poll):
                        raise Interrupted(job.waiting) from None
                    continue
                if since is not None:
                    log.info("Scan %s #%s: %s can be written again after %.1f s: writing goes on",
                             job.scan.key, getattr(job.scan, "number", "?"), path,
                             time.monotonic() - since)
                return result
        finally:
            job.waiting = ""

    @staticmethod
    def wait_end(scan: Any, stop: Any) -> tuple[datetime.datetime, str]:
        """End time and end reason, once the scan is CLOSED (or ``CLOSE_WAIT`` passed)."""
        deadline = time.monotonic() + CLOSE_WAIT
        gone = False
        try:
            while scan.state < ScanState.CLOSED and time.monotonic() < deadline \
                    and not stop.is_set():
                scan.update(timeout=0.5)
        except ScanNotFoundError:  # expired or deleted once its data was read: write what we have
            gone = True
        info = scan.info if isinstance(scan.info, Mapping) else {}
        reason = info.get("end_reason") if scan.state >= ScanState.CLOSED else None
        reason = str(reason) if reason else \
            f"UNKNOWN (scan {'deleted from Redis' if gone else 'not closed'})"
        return parse_time(info.get("end_time")), " ".join(reason.split())
