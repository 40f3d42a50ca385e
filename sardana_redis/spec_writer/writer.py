"""Writing one blissdata scan into SPEC files (the SPEC writer's scan handler).

Files, confinement and locks come from
:class:`~sardana_redis.following.file_writer.FileScanWriter`. Scans are
appended one whole block at a time per file; a scan taken over after a
crash goes on after the points its half-written block holds (they may be
gone from Redis already: the memory tracker frees what writers saved).
A half-written block is cut only when what follows its start is all this
writer's (:func:`~sardana_redis.spec_writer.spec_format.written_by_us`); when
another program appended to the file meanwhile, the scan goes on in a new
block after those lines, with a ``#C`` line saying why. A block given up on an
error ends with ``#C scan failed: REASON``.

Each file is opened once per scan, through its folders' handles, never through
a link (:class:`~sardana_redis.following.paths.ConfinedFile`); everything is
read and written through that one handle.
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
from sardana_redis.following.follower import REDIS_DOWN, ScanJob, is_disk_full
from sardana_redis.following.ledger import DoneRecord
from sardana_redis.following.paths import ConfinedFile
from sardana_redis.following.scan_rows import stream_shapes
from sardana_redis.published_scan import PublishedScan
from sardana_redis.spec_writer.spec_format import (
    FOOTER_START,
    SpecLayout,
    continued,
    custom_lines,
    data_lines,
    failed,
    file_header,
    layout_from_scan,
    point_ends,
    scan_footer,
    scan_header,
    written_by_us,
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
    first: int = 0  #: the scan's point the block's first row is (a continuation block)


def _first_key(path: Path) -> str:
    """The progress entry of a continuation block's first point."""
    return f"{path} first point"


def read_from(out: TextIO, offset: int) -> bytes:
    """The bytes of an open file from ``offset`` to its end (without moving its position)."""
    chunks, fd = [], out.fileno()
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class SpecScanWriter(FileScanWriter):
    """The SPEC writer's :class:`~sardana_redis.following.follower.ScanHandler`."""

    FORMAT = "spec"

    def write_scan(self, job: ScanJob, scan: Any, files: list[Path]) -> DoneRecord | None:
        layout = layout_from_scan(scan.number, scan.info, stream_shapes(scan))
        with ExitStack() as stack:
            blocks: list[Block] = []
            for path in files:  # each closed at the end, even when a later one is waited for
                blocks.append(self._open_block(job, path))
                stack.enter_context(blocks[-1].out)
            try:
                return self._write_blocks(job, scan, layout, blocks)
            except Exception as exc:
                if not isinstance(exc, REDIS_DOWN) and not is_disk_full(exc):  # else resumed
                    self._give_up(blocks, f"{type(exc).__name__}: {exc}")
                raise

    @staticmethod
    def _give_up(blocks: list[Block], reason: str) -> None:
        """Close the blocks of a failed scan with a ``#C scan failed: REASON`` line."""
        for block in blocks:
            try:
                block.out.write(failed(reason))
                block.out.flush()
            except OSError as exc:
                log.error("%s: cannot write the failure line: %s", block.path, exc)

    def _write_blocks(self, job: ScanJob, scan: Any, layout: SpecLayout,
                      blocks: list[Block]) -> DoneRecord | None:
        files = [b.path for b in blocks]
        start = self._resume(job, blocks, layout, scan.number)
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
        published = PublishedScan.parse(scan.info)  # as closed: with the custom data added late
        for why in published.refused:
            log.warning("Scan #%d: %s: not written", scan.number, why)
        footer = scan_footer(end_time, end_reason, custom_lines(published, before=False))
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
        confined = ConfinedFile(path, self.roots)

        def attempt() -> TextIO:  # waited for while not writable (PermissionError)
            folder, fd = confined.open(os.O_RDWR | os.O_CREAT | os.O_APPEND)
            os.close(folder)
            return os.fdopen(fd, "a+", encoding="utf-8", newline="\n")

        out = self.wait_for_file(job, path, attempt)
        progress = job.ledger.progress(job.scan.key)
        try:
            size = out.seek(0, os.SEEK_END)
            offset = progress.get(str(path))
            resumed = size > 0 and offset is not None and offset <= size
            first = progress.get(_first_key(path), 0) if resumed else 0
            if size == 0:
                out.write(file_header(str(path), datetime.datetime.now().astimezone()))
                size = out.tell()
            if not resumed or offset is None:  # resumed: offset is not None
                offset = progress[str(path)] = size
                job.ledger.set_progress(job.scan.key, progress)
        except BaseException:
            out.close()
            raise
        log.info("recording into '%s'", path)
        return Block(path, out, offset, resumed, first)

    def _resume(self, job: ScanJob, blocks: list[Block], layout: SpecLayout,
                number: int) -> int | None:
        """Cut every block after the points all of them hold (a previous owner's partial
        line goes), write the header where it is missing; return the number of points
        already on disk, where writing goes on (the memory tracker may have freed them from
        Redis). None when every block is already whole, footer included (Redis came back
        from an older snapshot): nothing is touched, later blocks stay. A block followed
        by lines this writer did not write is never cut: the scan goes on in a new block
        (:meth:`_continue`)."""
        ends, whole, counts, foreign = [], [], [], []
        for block in blocks:
            text = read_from(block.out, block.offset)
            ends.append(point_ends(text, layout) if block.resumed else None)
            foreign.append(block.resumed and not written_by_us(text, ends[-1], layout))
            whole.append(ends[-1] is not None and text[ends[-1][-1]:].startswith(FOOTER_START))
            counts.append(block.first + (len(ends[-1]) - 1 if ends[-1] is not None else 0))
        if all(whole):
            return None
        start = min(counts)
        for block, block_ends, not_ours in zip(blocks, ends, foreign, strict=True):
            if not_ours or start < block.first:
                self._continue(job, block, layout, start)
            elif block_ends is not None:
                block.out.truncate(block.offset + block_ends[start - block.first])
                if start:
                    log.info("resuming scan #%d in %s after its %d points on disk",
                             number, block.path, start)
            else:
                block.out.truncate(block.offset)
                block.out.write(scan_header(layout) + (
                    continued(number, block.first, "the header was cut") if block.first else ""))
                block.out.flush()
        return start

    @staticmethod
    def _continue(job: ScanJob, block: Block, layout: SpecLayout, start: int) -> None:
        """Go on with the scan from point ``start`` in a new block at the end of the file,
        whose ``#C`` line says why (the file changed after the block began)."""
        size = block.out.seek(0, os.SEEK_END)
        why = (f"{block.path} changed after byte {block.offset} while the writer was down "
               "(another program wrote to it): not cut; the scan goes on here")
        log.warning("Scan #%d: %s: lines the writer did not write follow its block: not "
                    "cut; the scan goes on in a new block from point %d", layout.number,
                    block.path, start)
        progress = job.ledger.progress(job.scan.key)
        progress.update({str(block.path): size, _first_key(block.path): start})
        job.ledger.set_progress(job.scan.key, progress)
        block.out.write(scan_header(layout)
                        + (continued(layout.number, start, why) if start else ""))
        block.out.flush()
        block.offset, block.first = size, start

    def _write_rows(self, job: ScanJob, scan: Any, layout: SpecLayout, outs: list[TextIO],
                    start: int) -> int | None:
        rows = self.scan_rows(scan, layout.streams, start)
        for batch in rows.batches(stop=job.stop):
            job.points_seen = rows.points_seen
            count = len(next(iter(batch.values()))) if batch else 0
            for start in range(0, count, TEXT_SLICE):  # bounded memory for the text
                sliced = {k: v[start:start + TEXT_SLICE] for k, v in batch.items()}
                text = data_lines(layout, sliced)
                for out in outs:
                    out.write(text)
                    out.flush()
            job.rows_written = rows.rows_read
        return None if job.stop.is_set() else rows.rows_read
