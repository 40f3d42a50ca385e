"""The viewer's readers: one thread per scan watched (and one per list of scans), shared
by every client that watches it.

A feed reads Redis on its own thread (blissdata is synchronous) into a bounded model
(:mod:`sardana_redis.web.view`), and wakes its subscribers (callables, called from its
thread: they must not block). A client asks :meth:`ScanFeed.message` for what it has not
seen yet whenever it likes: a slow client gets the latest state at once, the updates it
missed coalesced; nothing waits for it. Feeds only read Redis.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from blissdata.exceptions import EndOfStream, NoScanAvailable
from blissdata.redis_engine.scan import ScanState
from blissdata.streams import CursorGroup

from sardana_redis.browse import list_scans, load
from sardana_redis.following.limits import ScanLimits, point_bytes
from sardana_redis.following.scan_rows import SEAL_GRACE, wait_prepared
from sardana_redis.scan_model import StreamShape
from sardana_redis.scan_plot import numeric_shapes, regular_grid
from sardana_redis.web.view import (
    MAX_FRAME_BYTES,
    MAX_SPECTRUM_VALUES,
    Series,
    Waterfall,
    decimate_frame,
    decimate_row,
    panel_views,
)

log = logging.getLogger(__name__)

#: Seconds between two reads of the 1D/2D channels' last points, and of the scan's state.
HEAVY_PERIOD = 0.1
STATE_PERIOD = 0.25
#: Seconds one blocking read of the scalar streams waits for new points.
READ_TIMEOUT = 0.1
#: Seconds between two listings of the scans (a new scan lists them at once).
LIST_PERIOD = 1.0
#: Seconds before reading a scan again after Redis could not be reached.
RETRY_PERIOD = 1.0

Notify = Callable[[], None]


class Feed:
    """A reader thread with subscribers and a version that grows with each change."""

    def __init__(self, name: str):
        self._lock = threading.Lock()
        self._subscribers: set[Notify] = set()
        self._stop = threading.Event()
        self.version = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def subscribe(self, notify: Notify) -> None:
        with self._lock:
            self._subscribers.add(notify)

    def unsubscribe(self, notify: Notify) -> int:
        """Remove a subscriber; the number left."""
        with self._lock:
            self._subscribers.discard(notify)
            return len(self._subscribers)

    def _changed(self) -> None:
        """Called with the lock held, after a change: bump the version, wake everyone."""
        self.version += 1
        for notify in list(self._subscribers):
            try:
                notify()
            except Exception:
                log.debug("subscriber gone", exc_info=True)

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class ScanCursor:
    """What one client of a :class:`ScanFeed` has received."""

    version: int = -1
    layout: int = -1  #: the panels' version received
    generation: int = -1
    sent: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)  #: heavy stream -> version sent
    waterfall: dict[str, int] = field(default_factory=dict)  #: heavy stream -> last row seq


@dataclass
class _Heavy:
    """The last point of a 1D or 2D channel, decimated."""

    kind: str  #: "spectrum" or "image"
    seen: int = 0  #: points of the stream when last read
    version: int = 0
    last: Any = None  #: the decimated spectrum (list) or frame (dict)
    waterfall: Waterfall | None = None


class ScanFeed(Feed):
    """Follows one scan (any blissdata scan) until it is closed."""

    def __init__(self, store: Any, key: str):
        super().__init__(f"web-scan-{key}")
        self.store = store
        self.key = key
        self.scan_state: dict[str, Any] = {"key": key, "state": "LOADING"}
        self.panels: list[dict[str, Any]] = []
        self.layout = 0  #: grows when the panels change (the clients start again)
        self.series = Series(())
        self.heavy: dict[str, _Heavy] = {}
        self.not_drawn: dict[str, str] = {}
        self.done = False

    # --- the client side (any thread) ---

    def message(self, cursor: ScanCursor) -> dict[str, Any] | None:
        """What the client at ``cursor`` has not seen yet (None: nothing new); advances it."""
        with self._lock:
            if cursor.version == self.version:
                return None
            first = cursor.layout != self.layout
            cursor.version, cursor.layout = self.version, self.layout
            reset, values = self.series.since(cursor.generation if not first else -1, cursor.sent)
            cursor.generation = self.series.generation
            cursor.sent = self.series.lengths()
            out: dict[str, Any] = {"scan": dict(self.scan_state, points=self.series.points,
                                                not_drawn=dict(self.not_drawn)),
                                   "done": self.done}
            if first:
                out["panels"] = self.panels
                cursor.frames, cursor.waterfall = {}, {}
            out["series"] = {"reset": reset, "stride": self.series.stride,
                             "values": {n: v for n, v in values.items() if v or reset}}
            heavy = {}
            for name, h in self.heavy.items():
                item: dict[str, Any] = {}
                if cursor.frames.get(name) != h.version and h.last is not None:
                    item.update(kind=h.kind, point=h.seen - 1, last=h.last)
                    cursor.frames[name] = h.version
                if h.waterfall is not None and h.waterfall.seq != cursor.waterfall.get(name, 0):
                    item["waterfall"] = h.waterfall.since(cursor.waterfall.get(name, 0))
                    cursor.waterfall[name] = h.waterfall.seq
                if item:
                    heavy[name] = item
            out["heavy"] = heavy
            return out

    # --- the reader thread ---

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # down, or a failover
                log.warning("web viewer: scan %s: Redis unreachable (%s), retrying", self.key,
                            exc)
                with self._lock:
                    self.scan_state = dict(self.scan_state, error=f"Redis unreachable: {exc}")
                    self._changed()
                self._stop.wait(RETRY_PERIOD)
            except Exception as exc:  # noqa: BLE001 - anything in Redis may be malformed
                self._failed(exc)
                return

    def _failed(self, exc: Exception) -> None:
        """The scan cannot be shown (deleted, malformed): said to the clients, for good."""
        log.warning("web viewer: scan %s: %s: %s", self.key, type(exc).__name__, exc)
        with self._lock:
            self.scan_state = dict(self.scan_state, error=f"{type(exc).__name__}: {exc}")
            self.done = True
            self._changed()

    def _follow(self) -> None:
        scan = load(self.store, self.key)
        self._set_state(scan)
        scan = wait_prepared(self.store, scan, timeout=math.inf, stop=self._stop)
        if scan is None:
            return
        ScanLimits().check_count(len(scan.streams))
        shapes = numeric_shapes(scan)
        views, left_out = panel_views(scan.info, shapes)
        self.not_drawn.update(left_out)
        scalars: list[str] = []
        heavy: dict[str, _Heavy] = {}
        for view in views:
            p = view.panel
            if p.kind in ("curves", "mesh"):
                scalars += [s for s in (p.x, p.y, *p.streams) if s and s not in scalars]
                continue
            for name in (p.streams[0], p.x):
                if not name or name in heavy:
                    continue
                size = point_bytes(StreamShape(str(scan.streams[name].dtype), shapes[name]))
                if size > MAX_FRAME_BYTES:
                    self.not_drawn[name] = f"points of {size} bytes, more than {MAX_FRAME_BYTES}"
                    continue
                heavy[name] = _Heavy("image" if p.kind == "image" else "spectrum",
                                     waterfall=Waterfall() if name == p.streams[0] and
                                     p.kind == "spectrum" else None)
        with self._lock:
            self.panels = [v.describe() for v in views]
            self.series = Series(scalars)
            self.heavy = heavy
            self.layout += 1
            self._set_state(scan)
            self._changed()
        self._read(scan, scalars)

    def _read(self, scan: Any, scalars: list[str]) -> None:
        group = CursorGroup([scan.streams[n] for n in scalars]) if scalars else None
        next_heavy = next_state = 0.0
        closed_at = None  #: when the scan was first seen closed
        while not self._stop.is_set():
            changed = False
            if group is not None:
                try:
                    got = group.read(timeout=READ_TIMEOUT)
                except EndOfStream:
                    group, got = None, {}
                changed = self._add_scalars(got)
            now = time.monotonic()
            if closed_at is None and scan.state >= ScanState.CLOSED:
                closed_at = now
            # closed, and every stream ended (or never will: a publisher that died unsealed)
            finished = closed_at is not None and (group is None or now - closed_at > SEAL_GRACE)
            if now >= next_heavy or finished:
                next_heavy = now + HEAVY_PERIOD
                changed |= self._read_heavy(scan)
            if now >= next_state:
                next_state = now + STATE_PERIOD
                before = scan.state
                scan.update(block=False)
                changed |= scan.state != before
            if changed or finished:
                with self._lock:
                    self._set_state(scan)
                    if finished:
                        self._final_grids()
                        self.done = True
                    self._changed()
            if finished:
                return
            if group is None:
                self._stop.wait(HEAVY_PERIOD)

    def _add_scalars(self, got: Mapping[Any, Any]) -> bool:
        data, errors = {}, {}
        for stream, view in got.items():
            try:
                data[stream.name] = (view.index, view.get_data())
            except Exception as exc:  # noqa: BLE001 - expired or undecodable points
                errors[stream.name] = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.not_drawn.update(errors)
            for name, (index, values) in data.items():
                try:
                    self.series.append(name, index, values)
                except (TypeError, ValueError) as exc:
                    self.not_drawn[name] = f"{type(exc).__name__}: {exc}"
        return bool(data or errors)

    def _read_heavy(self, scan: Any) -> bool:
        changed = False
        for name, h in self.heavy.items():
            if name in self.not_drawn:
                continue
            try:
                stream = scan.streams[name]
                length = len(stream)
                if length <= h.seen:
                    continue
                point = stream[length - 1]
                last = decimate_frame(point) if h.kind == "image" else \
                    decimate_row(point, MAX_SPECTRUM_VALUES)
            except Exception as exc:  # noqa: BLE001 - file-referenced frames, odd data
                with self._lock:
                    self.not_drawn[name] = f"{type(exc).__name__}: {exc}"
                changed = True
                continue
            with self._lock:
                h.seen, h.last = length, last
                h.version += 1
                if h.waterfall is not None:
                    h.waterfall.add(length - 1, point)
            changed = True
        return changed

    def _set_state(self, scan: Any) -> None:
        info = scan.info if isinstance(scan.info, Mapping) else {}
        npoints = info.get("npoints")
        self.scan_state = {
            "key": self.key, "number": scan.number, "name": str(scan.name),
            "session": str(scan.session or ""), "title": str(info.get("title") or ""),
            "state": scan.state.name, "end_reason": str(info.get("end_reason") or ""),
            "npoints": npoints if isinstance(npoints, int) and not isinstance(npoints, bool)
            else None,
        }

    def _final_grids(self) -> None:
        """A mesh whose points fill a regular grid is drawn as an image (scan_plot's rule)."""
        for panel in self.panels:
            if panel["kind"] != "mesh" or self.series.stride != 1:
                continue
            x, y = (self.series.array(panel[a]).copy() for a in ("x", "y"))
            n = min(len(x), len(y))
            grid = panel["grid"]
            found = regular_grid(x[:n], y[:n], tuple(grid) if grid else None) if n else None
            panel["image"] = list(found) if found else None


class ListFeed(Feed):
    """The scans matching some filters (``sardana-redis scans``), listed again each
    :data:`LIST_PERIOD` seconds and as soon as a new scan starts."""

    def __init__(self, store: Any, filters: Mapping[str, Any], limit: int):
        super().__init__("web-scan-list")
        self.store = store
        self.filters = dict(filters)
        self.limit = limit
        self.scans: list[dict[str, Any]] | None = None  #: None: not listed yet

    def message(self, version: int) -> tuple[int, list[dict[str, Any]] | None]:
        """(the current version, the scans if listed since ``version``, else None)."""
        with self._lock:
            return self.version, (self.scans if version != self.version else None)

    def _run(self) -> None:
        since = None
        while not self._stop.is_set():
            try:
                if since is None:
                    since = self.store.get_last_scan_timetag()
                scans = [vars(s) for s in list_scans(self.store, self.limit, **self.filters)]
                with self._lock:
                    if scans != self.scans:
                        self.scans = scans
                        self._changed()
                try:
                    since, _ = self.store.get_next_scan(since=since, timeout=LIST_PERIOD)
                except NoScanAvailable:
                    pass
            except Exception as exc:  # noqa: BLE001 - Redis down: try again
                log.warning("web viewer: listing scans: %s: %s", type(exc).__name__, exc)
                self._stop.wait(LIST_PERIOD)


class Hub:
    """The feeds of one viewer, shared by its clients and stopped when the last leaves."""

    MAX_FEEDS = 64

    def __init__(self, store: Any):
        self.store = store
        self._lock = threading.Lock()
        self._feeds: dict[Any, Feed] = {}

    def subscribe_scan(self, key: str, notify: Notify) -> ScanFeed:
        return self._subscribe(("scan", key), lambda: ScanFeed(self.store, key), notify)

    def subscribe_list(self, filters: Mapping[str, Any], limit: int, notify: Notify) -> ListFeed:
        ident = ("list", tuple(sorted(filters.items())), limit)
        return self._subscribe(ident, lambda: ListFeed(self.store, filters, limit), notify)

    def _subscribe(self, ident: Any, make: Callable[[], Feed], notify: Notify) -> Any:
        with self._lock:
            feed = self._feeds.get(ident)
            if feed is None:
                if len(self._feeds) >= self.MAX_FEEDS:
                    raise OverflowError(f"{self.MAX_FEEDS} scans or lists watched already")
                feed = self._feeds[ident] = make()
                feed.start()
            feed.subscribe(notify)
            return feed

    def unsubscribe(self, feed: Feed, notify: Notify) -> None:
        with self._lock:
            if feed.unsubscribe(notify) == 0:
                feed.stop()
                self._feeds = {k: f for k, f in self._feeds.items() if f is not feed}

    def readers(self) -> int:
        """Feeds running (one per scan or list watched)."""
        with self._lock:
            return len(self._feeds)

    def close(self) -> None:
        with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.stop()
        for feed in feeds:
            feed.join(2.0)
