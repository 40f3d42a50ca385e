"""Writing one blissdata scan into SPEC files (the SPEC writer's scan handler).

Which files: the ``.dat``/``.spec`` files the scan requested
(``scan_info["sardana"]["requested_files"]``), or the service's default
pattern for scans that requested none. Files are confined to the root
folders; scans are appended, one whole block at a time per file (a file
lock held by the scan), and a scan taken over after a crash truncates its
half-written block and writes it again.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from blissdata.redis_engine.scan import ScanState

from sardana_redis.following.follower import ScanJob
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.following.paths import UnsafePath, confine, expand_pattern
from sardana_redis.following.scan_rows import ScanRows, stream_shapes, wait_prepared
from sardana_redis.spec_writer.spec_format import (
    ScanRejected,
    SpecLayout,
    data_lines,
    file_header,
    layout_from_scan,
    parse_time,
    scan_footer,
    scan_header,
)

log = logging.getLogger(__name__)

SPEC_SUFFIXES = (".dat", ".spec")
#: Seconds to wait for a scan's CLOSED state (its end_reason) once its streams ended.
CLOSE_WAIT = 10.0


def requested_spec_files(info: Mapping[str, Any]) -> list[str]:
    """The SPEC files a scan requested (untrusted: only strings are kept)."""
    sardana = info.get("sardana", {})
    if not isinstance(sardana, Mapping):
        raise ScanRejected("scan_info.sardana is not a mapping")
    files = sardana.get("requested_files")
    if files is None:
        return []
    if not isinstance(files, list):
        raise ScanRejected("scan_info.sardana.requested_files is not a list")
    out = []
    for entry in files:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise ScanRejected("malformed entry in scan_info.sardana.requested_files")
        if entry.get("format") == "spec" or entry["path"].lower().endswith(SPEC_SUFFIXES):
            out.append(entry["path"])
    return out


class SpecScanWriter:
    """The SPEC writer's :class:`~sardana_redis.following.follower.ScanHandler`."""

    def __init__(self, roots: Sequence[Path], default_pattern: str | None = None,
                 file_lock_poll: float = 0.2) -> None:
        if not roots:
            raise ValueError("a SPEC writer needs at least one root folder")
        relative = [str(r) for r in roots if not Path(r).is_absolute()]
        if relative:
            raise ValueError(f"root folders must be absolute: {', '.join(relative)}")
        self.roots = [Path(r) for r in roots]
        self.default_pattern = default_pattern
        self.file_lock_poll = file_lock_poll

    def targets(self, scan: Any) -> list[Path]:
        """The confined files this scan goes to (may be empty: nothing to write)."""
        info = scan.info if isinstance(scan.info, Mapping) else {}
        files = requested_spec_files(info)
        if not files and self.default_pattern:
            fields = {k: getattr(scan, k, None) for k in
                      ("session", "proposal", "collection", "dataset", "name", "number")}
            sardana = info.get("sardana")
            fields["beamline"] = sardana.get("beamline") if isinstance(sardana, Mapping) else None
            fields["date"] = parse_time(info.get("start_time")).strftime("%Y%m%d")
            files = [expand_pattern(self.default_pattern, fields)]
        try:
            return list(dict.fromkeys(confine(f, self.roots) for f in files))
        except UnsafePath as exc:
            raise ScanRejected(str(exc)) from None

    def handle(self, job: ScanJob) -> DoneRecord | None:
        scan = wait_prepared(job.store, job.scan, stop=job.stop)
        if scan is None:
            return None
        files = self.targets(scan)
        if not files:
            return DoneRecord("skipped", "no SPEC file requested and no default pattern")
        layout = layout_from_scan(scan.number, scan.info, stream_shapes(scan))
        if not self._lock_files(job, files):
            return None
        try:
            with ExitStack() as stack:
                outs = [stack.enter_context(self._open_block(job, path)) for path in files]
                rows = self._write_rows(job, scan, layout, outs)
                if rows is None:
                    return None
                end_time, end_reason = self._end(scan, job.stop)
                footer = scan_footer(end_time, end_reason)
                for out in outs:
                    out.write(footer)
                    out.flush()
                    os.fsync(out.fileno())
        finally:
            if not job.stop.is_set():  # else the locks stay with the scan, for its resume
                for path in files:
                    job.ledger.unlock_file(str(path), scan.key)
        for path in files:
            log.info("finished recording to '%s' (scan #%d, %d points, %s)",
                     path, scan.number, rows, end_reason)
        return DoneRecord("written", f"end reason {end_reason}",
                          tuple(str(p) for p in files), rows)

    def _lock_files(self, job: ScanJob, files: list[Path]) -> bool:
        """Wait until this scan owns every file (scans are written one after the other)."""
        for path in files:
            while not job.ledger.lock_file(str(path), job.scan.key):
                if job.stop.wait(self.file_lock_poll):
                    return False
        return True

    def _open_block(self, job: ScanJob, path: Path) -> TextIO:
        """Open ``path`` for this scan's block: at its end, or at the recorded start of a
        block a previous owner left half-written (which is truncated)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        progress = job.ledger.progress(job.scan.key)
        out = open(path, "a+", encoding="utf-8", newline="\n")
        try:
            size = out.seek(0, os.SEEK_END)
            offset = progress.get(str(path))
            if offset is not None and offset <= size:
                out.truncate(offset)
                size = out.seek(offset)
                log.info("resuming scan #%d in %s: block rewritten from byte %d",
                         job.scan.number, path, offset)
            else:
                progress[str(path)] = size
                job.ledger.set_progress(job.scan.key, progress)
            if size == 0:
                out.write(file_header(str(path), datetime.datetime.now().astimezone()))
        except BaseException:
            out.close()
            raise
        log.info("recording into '%s'", path)
        return out

    def _write_rows(self, job: ScanJob, scan: Any, layout: SpecLayout, outs: list[TextIO]) -> int | None:
        header = scan_header(layout)
        for out in outs:
            out.write(header)
            out.flush()
        rows = ScanRows(scan, layout.streams)
        for batch in rows.batches(stop=job.stop):
            job.points_seen = rows.points_seen
            if batch:
                text = data_lines(layout, batch)
                for out in outs:
                    out.write(text)
                    out.flush()
                job.rows_written = rows.rows_read
        return None if job.stop.is_set() else rows.rows_read

    def _end(self, scan: Any, stop: Any) -> tuple[datetime.datetime, str]:
        deadline = time.monotonic() + CLOSE_WAIT
        while scan.state < ScanState.CLOSED and time.monotonic() < deadline and not stop.is_set():
            scan.update(timeout=0.5)
        info = scan.info if isinstance(scan.info, Mapping) else {}
        reason = info.get("end_reason") if scan.state >= ScanState.CLOSED else None
        reason = str(reason) if reason else "UNKNOWN (scan not closed)"
        return parse_time(info.get("end_time")), " ".join(reason.split())
