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
from blissdata.exceptions import EndOfStream, ScanNotFoundError
from blissdata.redis_engine.scan import ScanState
from blissdata.streams import CursorGroup

from sardana_redis.scan_model import StreamShape

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
    """dtype and point shape of each stream of a scan, in publication order."""
    shapes = {}
    streams = scan.streams
    for name in published_order(scan):
        stream = streams[name]
        if getattr(stream, "kind", "array") == "json":
            shapes[name] = StreamShape("json", ())
        else:
            shapes[name] = StreamShape(str(stream.dtype), tuple(int(d) for d in stream.shape))
    return shapes


def _as_array(data: Any) -> np.ndarray | list:
    return data if isinstance(data, np.ndarray) else list(data)


def _concat(parts: list) -> np.ndarray | list:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [v for part in parts for v in part]


class ScanRows:
    """Follows the given streams of a scan and yields complete rows in batches, from row
    ``start`` on (a resumed writer continues after the rows already in its file)."""

    def __init__(self, scan: Any, names: list[str], poll: float = 0.1, start: int = 0) -> None:
        self.scan = scan
        self.names = names
        self.poll = poll
        self.rows_read = start  #: complete rows handed out so far (with the skipped ones)
        self.points_seen = 0  #: longest stream length seen (for the lag)
        self._buffers: dict[str, list] = {name: [] for name in names}
        self._next_state_check = 0.0
        self._stopped_at: float | None = None

    def batches(self, stop: Any = None) -> Iterator[dict[str, Any]]:
        """Yield ``{stream name: values}`` for each new run of complete rows, until every
        stream ended. ``stop`` (an Event) ends the iteration early; a quiet scan yields
        empty dicts every ``poll`` seconds so the caller keeps control."""
        streams = {name: self.scan.streams[name] for name in self.names}
        if self.rows_read:
            yield from self._batches_from(streams, stop)
            return
        by_key = {s.key: name for name, s in streams.items()}
        cursor = CursorGroup(list(streams.values()))
        while stop is None or not stop.is_set():
            try:
                views = cursor.read(timeout=self.poll)
            except EndOfStream:
                self._report_incomplete()
                return
            if not views and self._stopped_unsealed(streams):
                self._report_incomplete()
                return
            for stream, view in views.items():
                name = by_key[stream.key]
                data = _as_array(view.get_data())
                self._buffers[name].append(data)
            yield self._complete_rows()

    def _batches_from(self, streams: dict[str, Any], stop: Any) -> Iterator[dict[str, Any]]:
        """:meth:`batches` from row ``start`` on, by random access: a cursor always starts at
        point 0, which the memory tracker may already have freed once it was on disk."""
        read = {name: self.rows_read for name in streams}
        pause = stop.wait if stop is not None else time.sleep
        while stop is None or not stop.is_set():
            sealed = {name: stream.is_sealed() for name, stream in streams.items()}
            lengths = {name: len(stream) for name, stream in streams.items()}
            new = False
            for name, stream in streams.items():
                if lengths[name] > read[name]:
                    self._buffers[name].append(_as_array(stream[read[name]:lengths[name]]))
                    read[name], new = lengths[name], True
            if not new:
                if all(sealed.values()) or self._stopped_unsealed(streams):
                    self._report_incomplete()
                    return
                if pause(self.poll):  # True: stopped
                    return
            yield self._complete_rows()

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

    def _report_incomplete(self) -> None:
        """Every stream ended: points some streams have and others never got are not rows."""
        left = {name: sum(len(p) for p in parts) for name, parts in self._buffers.items()}
        if any(left.values()):
            short = sorted(name for name, count in left.items() if count < max(left.values()))
            log.warning("Scan %s: streams %s ended %d point(s) short of the longest: those "
                        "points are incomplete rows, not written", self.scan.key,
                        ", ".join(map(repr, short)), max(left.values()))

    def _complete_rows(self) -> dict[str, Any]:
        if not self.names:
            return {}
        buffered = {name: sum(len(p) for p in parts) for name, parts in self._buffers.items()}
        self.points_seen = self.rows_read + max(buffered.values())
        count = min(buffered.values())
        if count == 0:
            return {}
        batch = {}
        for name, parts in self._buffers.items():
            data = _concat(parts)
            batch[name] = data[:count]
            rest = data[count:]
            self._buffers[name] = [rest] if len(rest) else []
        self.rows_read += count
        return batch
