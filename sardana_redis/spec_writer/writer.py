"""Writing one blissdata scan into SPEC files (the SPEC writer's scan handler).

Files, confinement and locks come from
:class:`~sardana_redis.following.file_writer.FileScanWriter`. Scans are
appended one whole block at a time per file; a scan taken over after a
crash truncates its half-written block and writes it again.
"""

from __future__ import annotations

import datetime
import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from sardana_redis.following.file_writer import FileScanWriter
from sardana_redis.following.follower import ScanJob
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.following.scan_rows import ScanRows, stream_shapes
from sardana_redis.spec_writer.spec_format import (
    SpecLayout,
    data_lines,
    file_header,
    layout_from_scan,
    scan_footer,
    scan_header,
)

log = logging.getLogger(__name__)

#: Rows formatted and written at a time (the text of 10k rows is about 10 MB at most).
TEXT_SLICE = 10_000


class SpecScanWriter(FileScanWriter):
    """The SPEC writer's :class:`~sardana_redis.following.follower.ScanHandler`."""

    FORMAT = "spec"

    def write_scan(self, job: ScanJob, scan: Any, files: list[Path]) -> DoneRecord | None:
        layout = layout_from_scan(scan.number, scan.info, stream_shapes(scan))
        with ExitStack() as stack:
            outs = [stack.enter_context(self._open_block(job, path)) for path in files]
            rows = self._write_rows(job, scan, layout, outs)
            if rows is None:
                return None
            end_time, end_reason = self.wait_end(scan, job.stop)
            footer = scan_footer(end_time, end_reason)
            for out in outs:
                out.write(footer)
                out.flush()
                os.fsync(out.fileno())
        for path in files:
            log.info("finished recording to '%s' (scan #%d, %d points, %s)",
                     path, scan.number, rows, end_reason)
        return DoneRecord("written", f"end reason {end_reason}",
                          tuple(str(p) for p in files), rows)

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
            count = len(next(iter(batch.values()))) if batch else 0
            for start in range(0, count, TEXT_SLICE):  # bounded memory for the text
                text = data_lines(layout, {k: v[start:start + TEXT_SLICE] for k, v in batch.items()})
                for out in outs:
                    out.write(text)
                    out.flush()
            job.rows_written = rows.rows_read
        return None if job.stop.is_set() else rows.rows_read
