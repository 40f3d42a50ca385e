"""Reading a blissdata scan as it grows: batches of complete rows.

A row ``i`` is complete when every followed stream has its point ``i``:
writers that write a line per point (SPEC) or keep columns aligned (NeXus)
only ever see complete rows. Works on any blissdata scan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState
from blissdata.streams.event_stream import StreamEntry

from sardana_redis.following.limits import MAX_POINTS, READ_BUDGET, rows_per_read
from sardana_redis.scan_model import ScanRejected, StreamShape

log = logging.getLogger(__name__)

#: Seconds a stopped scan's streams may take to be sealed before the writer stops waiting.
SEAL_GRACE = 5.0


def wait_prepared(store: Any, scan: Any, timeout: float = 30.0, stop: Any = None) -> Any:
    """Return ``scan`` once PREPARED or later, with its stream list (None if ``stop`` is set).

    blissdata's load race: a scan loaded while its publisher runs prepare()
    and start() can look STARTED with no streams; it is reloaded then.
    """
    deadline = time.monotonic() + timeout
    while scan.state < ScanState.PREPARED:
        if stop is not None and stop.is_set():
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"scan {scan.key} not prepared after {timeout} s")
        scan.update(timeout=min(remaining, 0.5))
    if not scan.streams:
        scan = store.load_scan(scan.key)
    return scan


def published_order(scan: Any) -> list[str]:
    """The scan's stream names in the order they were published.

    ``scan.streams`` comes out of a set in blissdata 2.4 (random order); the scan
    document keeps the publication order.
    """
    streams = scan.streams
    model = getattr(getattr(scan, "_model", None), "data_streams", None)
    ordered = [name for name in model if name in streams] if isinstance(model, dict) else []
    return ordered + [name for name in streams if name not in ordered]


def stream_shapes(scan: Any) -> dict[str, StreamShape]:
    """dtype and point shape of each stream of a scan, in publication order
    (:class:`ScanRejected` for a shape that is not a tuple of integers)."""
    shapes = {}
    streams = scan.streams
    for name in published_order(scan):
        stream = streams[name]
        if getattr(stream, "kind", "array") == "json":
            shapes[name] = StreamShape("json", ())
            continue
        try:
            shapes[name] = StreamShape(str(stream.dtype), tuple(int(d) for d in stream.shape))
        except (TypeError, ValueError):
            raise ScanRejected(f"stream {name!r}: malformed shape {stream.shape!r}") from None
    return shapes


def _as_array(data: Any) -> np.ndarray | list:
    return data if isinstance(data, np.ndarray) else list(data)


def _concat(parts: list) -> np.ndarray | list:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [v for part in parts for v in part]


def _filler(like: np.ndarray | list, count: int) -> np.ndarray | list:
    """``count`` missing points: NaN (floats), 0 (other numbers), None (JSON)."""
    if not isinstance(like, np.ndarray):
        return [None] * count
    fill = np.nan if like.dtype.kind in "fc" else 0
    return np.full((count, *like.shape[1:]), fill, dtype=like.dtype)


def index_problems(spans: list[tuple[int, int]], start: int) -> list[tuple[str, int, int]]:
    """Gaps and overlaps in entries ``(first index, length)`` read from ``start`` on (the
    first entry may begin before ``start``): ``("gap"|"overlap", first, last)`` index
    ranges, in order."""
    problems, expected = [], start
    for number, (first, length) in enumerate(spans):
        if first > expected:
            problems.append(("gap", expected, first - 1))
        elif first < expected and length and number:
            problems.append(("overlap", first, min(expected, first + length) - 1))
        expected = max(expected, first + length)
    return problems


def _runs(entries: list) -> list[list]:
    """Entries split into runs of contiguous indexes (each run decoded at once)."""
    runs: list[list] = []
    for entry in entries:
        if runs and runs[-1][-1].id + runs[-1][-1].length == entry.id:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


def read_points(stream: Any, start: int, stop: int) -> tuple[np.ndarray | list, list]:
    """Points ``start`` to ``stop`` (excluded) of a stream, with the index problems met
    (:func:`index_problems`): a gap (indexes no entry holds) is filled (:func:`_filler`),
    an overlap (indexes two entries hold) keeps the first value. Always ``stop - start``
    points."""
    events = stream.event_stream
    entries = events._range(min=start, max=stop - 1, count=stop - start + 1)  # hostile ids too
    if not entries or entries[0].id > start:
        entries = events._revrange(max=start, count=1) + entries
    entries = [e for e in entries if not e.is_seal and e.id + e.length > start]
    problems = index_problems([(e.id, e.length) for e in entries], start)
    parts: list = []
    position = start  #: the next index to hand out
    for run in _runs(entries):
        data = _as_array(events._encoder.decode([e.batch for e in run]))
        first = run[0].id
        if first > position:
            parts.append(_filler(data, first - position))
            position = first
        data = data[position - first:stop - first]
        if len(data):
            parts.append(data)
            position += len(data)
        if position >= stop:
            break
    if position < stop:
        like = parts[0] if parts else _as_array(events._encoder.decode([]))
        parts.append(_filler(like, stop - position))
        if not any(kind == "gap" and last >= stop - 1 for kind, _, last in problems):
            problems.append(("gap", position, stop - 1))
    return _concat(parts), problems


class ScanRows:
    """Follows the given streams of a scan and yields complete rows in batches, from row
    ``start`` on (a resumed writer continues after the rows already in its file).

    A batch holds at most ``budget`` bytes (:func:`~sardana_redis.following.limits.rows_per_read`
    rows), whatever the backlog: a writer's memory stays bounded. Only complete rows
    are read (a row ``i`` is read once every stream has its point ``i``).
    """

    def __init__(self, scan: Any, names: list[str], poll: float = 0.1, start: int = 0,
                 budget: int = READ_BUDGET, max_points: int = MAX_POINTS) -> None:
        self.scan = scan
        self.names = names
        self.poll = poll
        self.rows_read = start  #: complete rows handed out so far (with the skipped ones)
        self.points_seen = 0  #: longest stream length seen (for the lag)
        shapes = stream_shapes(scan)
        self.rows_per_read = rows_per_read({n: shapes[n] for n in names}, budget)
        self.max_points = max_points
        self._next_state_check = 0.0
        self._stopped_at: float | None = None
        self._sealed: dict[str, int] = {}  #: length of each sealed stream
        #: the last batch reached the points published so far, and more may come
        self.caught_up_live = False

    def batches(self, stop: Any = None) -> Iterator[dict[str, Any]]:
        """Yield ``{stream name: values}`` for each new run of complete rows, until every
        stream ended. ``stop`` (an Event) ends the iteration early; a quiet scan yields
        empty dicts every ``poll`` seconds so the caller keeps control.

        Reads by random access from ``start`` on (a cursor always starts at point 0, which
        the memory tracker may already have freed once it was on disk)."""
        streams = {name: self.scan.streams[name] for name in self.names}
        pause = stop.wait if stop is not None else time.sleep
        while stop is None or not stop.is_set():
            if not streams:
                return
            lengths = self._lengths(streams)
            self.points_seen = max(lengths.values())
            if self.points_seen > self.max_points:
                longest = max(lengths, key=lengths.__getitem__)
                raise ScanRejected(f"stream {longest!r} reached {self.points_seen} points, more "
                                   f"than the limit of {self.max_points} (--max-points / "
                                   "max_points)")
            complete = min(lengths.values())
            self.caught_up_live = len(self._sealed) < len(streams)
            if complete <= self.rows_read:
                if len(self._sealed) == len(streams) or self._stopped_unsealed(streams):
                    self._report_incomplete(lengths)
                    return
                if pause(self.poll):  # True: stopped
                    return
                yield {}
                continue
            end = min(complete, self.rows_read + self.rows_per_read)
            self.caught_up_live = end == complete and len(self._sealed) < len(streams)
            batch = {}
            for name, stream in streams.items():
                batch[name], problems = read_points(stream, self.rows_read, end)
                for kind, first, last in problems:
                    log.error("Scan %s #%s: stream %r has %s at indexes %d to %d: %s",
                              self.scan.key, getattr(self.scan, "number", "?"), name,
                              "a gap" if kind == "gap" else "an overlap", first, last,
                              "written as NaN/0/null" if kind == "gap" else "first values kept")
            self.rows_read = end
            yield batch

    def _lengths(self, streams: dict[str, Any]) -> dict[str, int]:
        """Points published in each stream (one Redis round trip for all the open ones)."""
        lengths = dict(self._sealed)
        open_ = [name for name in streams if name not in self._sealed]
        if open_:
            redis_ = streams[open_[0]].event_stream._data_store._redis
            pipe = redis_.pipeline(transaction=False)
            for name in open_:
                pipe.xrevrange(streams[name].key, count=1)
            for name, raw in zip(open_, pipe.execute(), strict=True):
                entry = StreamEntry.from_raw(raw[0]) if raw else None
                lengths[name] = entry.id + entry.length if entry else 0
                if entry is not None and entry.is_seal:
                    self._sealed[name] = lengths[name]
        return lengths

    def _stopped_unsealed(self, streams: dict[str, Any]) -> bool:
        """True when the scan stopped ``SEAL_GRACE`` seconds ago and streams are still not
        sealed (missing from Redis, or a broken publisher): they will never end."""
        now = time.monotonic()
        if now < self._next_state_check:
            return False
        self._next_state_check = now + 1.0
        try:
            self.scan.update(block=False)
        except ScanNotFoundError:
            return False  # the writer's end handling deals with a deleted scan
        if self.scan.state < ScanState.STOPPED:
            return False
        self._stopped_at = self._stopped_at or now
        if now - self._stopped_at < SEAL_GRACE:
            return False
        unsealed = [name for name, stream in streams.items() if not stream.is_sealed()]
        log.warning("Scan %s is %s but its streams %s were never sealed: written as far as they go",
                    self.scan.key, self.scan.state.name, ", ".join(map(repr, unsealed)))
        return True

    def _report_incomplete(self, lengths: dict[str, int]) -> None:
        """Every stream ended: points some streams have and others never got are not rows."""
        left = {name: length - self.rows_read for name, length in lengths.items()}
        if any(count > 0 for count in left.values()):
            short = sorted(name for name, count in left.items() if count < max(left.values()))
            log.warning("Scan %s: streams %s ended %d point(s) short of the longest: those "
                        "points are incomplete rows, not written", self.scan.key,
                        ", ".join(map(repr, short)), max(left.values()))
