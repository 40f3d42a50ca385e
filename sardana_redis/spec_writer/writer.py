"""Writing one blissdata scan into SPEC files (the SPEC writer's scan handler).

Files, confinement and locks come from
:class:`~sardana_redis.following.file_writer.FileScanWriter`. Scans are
appended one whole block at a time per file; a scan taken over after a
crash goes on after the points its half-written block holds (they may be
gone from Redis already: the memory tracker frees what writers saved).
"""

from __future__ import annotations

import datetime
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
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
    FOOTER_START,
    point_ends,
    scan_footer,
    scan_header,
)

log = logging.getLogger(__name__)

#: Rows formatted and written at a time (the text of 10k rows is about 10 MB at most).
TEXT_SLICE = 10_000


@dataclass
class Block:
    """A scan block in one file: where it starts, and whether a previous owner began it."""

    path: Path
    out: TextIO
    offset: int
    resumed: bool


class SpecScanWriter(FileScanWriter):
    """The SPEC writer's :class:`~sardana_redis.following.follower.ScanHandler`."""

    FORMAT = "spec"

    def write_scan(self, job: ScanJob, scan: Any, files: list[Path]) -> DoneRecord | None:
        layout = layout_from_scan(scan.number, scan.info, stream_shapes(scan))
        with ExitStack() as stack:
            blocks = []
            for path in files:  # each closed at the end, even when a later one is waited for
                blocks.append(self._open_block(job, path))
                stack.enter_context(blocks[-1].out)
            start = self._resume(blocks, layout, scan.number)
            if start is None:
                log.info("Scan #%d is already whole in %s: left as it is", scan.number,
                         ", ".join(map(str, files)))
                return DoneRecord("written", "already whole in its files",
                                  tuple(str(p) for p in files), job.ledger.points(scan.key))
            job.rows_written = start
            rows = self._write_rows(job, scan, layout, [b.out for b in blocks], start)
            if rows is None:
                return None
            end_time, end_reason = self.wait_end(scan, job.stop)
            footer = scan_footer(end_time, end_reason)
            for block in blocks:
                block.out.write(footer)
                block.out.flush()
                os.fsync(block.out.fileno())
        for path in files:
            log.info("finished recording to '%s' (scan #%d, %d points, %s)",
                     path, scan.number, rows, end_reason)
        return DoneRecord("written", f"end reason {end_reason}",
                          tuple(str(p) for p in files), rows)

    def _open_block(self, job: ScanJob, path: Path) -> Block:
        """Open ``path`` for this scan's block: at its end, or at the recorded start of a
        block a previous owner began. A file not writable now (PermissionError: e.g. made
        read-only or immutable for a while) is waited for, never a failed scan."""
        def attempt() -> TextIO:  # waited for while not writable (PermissionError)
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "a+", encoding="utf-8", newline="\n")

        out = self.wait_for_file(job, path, attempt)
        progress = job.ledger.progress(job.scan.key)
        try:
            size = out.seek(0, os.SEEK_END)
            offset = progress.get(str(path))
            resumed = size > 0 and offset is not None and offset <= size
            if size == 0:
                out.write(file_header(str(path), datetime.datetime.now().astimezone()))
                size = out.tell()
            if not resumed:
                offset = progress[str(path)] = size
                job.ledger.set_progress(job.scan.key, progress)
        except BaseException:
            out.close()
            raise
        log.info("recording into '%s'", path)
        return Block(path, out, offset, resumed)

    @staticmethod
    def _resume(blocks: list[Block], layout: SpecLayout, number: int) -> int | None:
        """Cut every block after the points all of them hold (a previous owner's partial
        line goes), write the header where it is missing; return the number of points
        already on disk, where writing goes on (the memory tracker may have freed them from
        Redis). None when every block is already whole, footer included (Redis came back
        from an older snapshot): nothing is touched, later blocks stay."""
        ends, whole = [], []
        for block in blocks:
            with open(block.path, "rb") as f:
                f.seek(block.offset)
                text = f.read()
            ends.append(point_ends(text, layout) if block.resumed else None)
            whole.append(ends[-1] is not None and text[ends[-1][-1]:].startswith(FOOTER_START))
        if all(whole):
            return None
        start = 0 if any(e is None for e in ends) else min(len(e) for e in ends) - 1
        for block, block_ends in zip(blocks, ends):
            if start:
                block.out.truncate(block.offset + block_ends[start])
                log.info("resuming scan #%d in %s after its %d points on disk",
                         number, block.path, start)
            else:
                block.out.truncate(block.offset)
                block.out.write(scan_header(layout))
                block.out.flush()
        return start

    def _write_rows(self, job: ScanJob, scan: Any, layout: SpecLayout, outs: list[TextIO],
                    start: int) -> int | None:
        rows = ScanRows(scan, layout.streams, start=start)
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
