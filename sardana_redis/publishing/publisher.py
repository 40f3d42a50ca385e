"""Publishing one scan into Redis as a blissdata scan, off the scan's thread.

The scan thread only hands records over (:meth:`ScanPublisher.push` appends to
a deque). A daemon thread per scan connects, creates the blissdata scan with
its streams, then every ``flush_interval`` (30 ms) converts what arrived into one batch
per stream and sends it; at the end it seals the streams and closes the scan
with its ``end_reason``. While the scan is open the thread also sends a heartbeat
(:mod:`sardana_redis.publishing.heartbeat`), so that the memory tracker closes the scan soon
after the MacroServer dies, and never while it merely waits (a paused scan).

Redis can be down, full or die at any moment: the worker then stops
publishing, drops what it cannot send, releases blissdata's sink threads and
keeps trying to close what it published until Redis allows (or gives up after
``retry_close_for`` seconds). The scan thread is never blocked longer than the
``wait`` it gives to :meth:`ScanPublisher.finish`, and learns of the first
problem through :attr:`ScanPublisher.problem` (to warn the user once).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import redis
from blissdata.redis_engine.scan import ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from sardana_redis.publishing import heartbeat
from sardana_redis.publishing.blissdata_sinks import release_sink, sink_is_broken
from sardana_redis.publishing.column_batches import ColumnConverter
from sardana_redis.datastore import init_db, is_initialized
from sardana_redis.publishing.h5maps import build_h5maps
from sardana_redis.redis_url import redact_redis_url, with_socket_timeouts
from sardana_redis.publishing.scan_info import build_scan_info, end_scan_info
from sardana_redis.scan_model import ScanDescription, ScanEnd

log = logging.getLogger(__name__)

_stores: dict[str, tuple[DataStore, redis.Redis]] = {}
_stores_lock = threading.Lock()


def publisher_url(url: str | None) -> str:
    """``url`` normalised, with short socket timeouts: a dead Redis must not stall a scan."""
    return with_socket_timeouts(url, connect=2, read=10)


def _data_store(url: str) -> tuple[DataStore, redis.Redis]:
    """One DataStore (and plain client) per URL and process (thread-safe, costly to build);
    the server is (re)initialised when it lost its blissdata set-up (flushed, or restarted
    empty)."""
    with _stores_lock:
        cached = _stores.get(url)
        if cached is None:
            init_db(url)
            cached = _stores[url] = (DataStore(url), redis.Redis.from_url(url))
    store, client = cached
    if not is_initialized(client):
        init_db(url)
    return store, client


class ScanPublisher:
    """Publishes one scan, described by a :class:`ScanDescription`, into Redis."""

    def __init__(
        self,
        url: str | None,
        description: ScanDescription,
        *,
        flush_interval: float = 0.03,
        retry_close_for: float = 600.0,
    ) -> None:
        self.url = publisher_url(url)
        self.description = description
        self.flush_interval = flush_interval
        self.retry_close_for = retry_close_for
        self.key: str | None = None  #: the blissdata scan key, once created
        self.problem: str | None = None  #: the first problem met, for one user warning
        self.points_sent = 0
        self._pending: deque[Mapping[str, Any]] = deque()
        self._end: ScanEnd | None = None
        self._wakeup = threading.Event()
        self._closed = threading.Event()
        self._scan: Any = None
        self._client: redis.Redis | None = None
        self._last_beat = -math.inf
        self._streams: dict[str, Any] = {}
        self._converters = [ColumnConverter(c) for c in description.columns]
        self._thread = threading.Thread(
            target=self._run, name=f"publisher-{description.identity.number}", daemon=True
        )

    # --- the scan thread's side ------------------------------------------

    def start(self) -> None:
        """Start publishing in the background."""
        self._thread.start()

    def push(self, data: Mapping[str, Any]) -> None:
        """Queue one record's data (``record.data``); cheap, never blocks."""
        self._pending.append(data)

    def finish(self, end: ScanEnd, wait: float = 10.0) -> bool:
        """Ask for the scan to be closed with ``end``; wait up to ``wait`` seconds.

        Returns True when the scan is closed (or there was nothing to close).
        """
        self._end = end
        self._wakeup.set()
        return self._closed.wait(wait)

    @property
    def placeholders(self) -> dict[str, int]:
        """Values replaced by placeholders, per stream (only those with some)."""
        return {c.column.stream: c.placeholders for c in self._converters if c.placeholders}

    # --- the worker thread ------------------------------------------------

    def _run(self) -> None:
        try:
            if self._open():
                self._publish_until_end()
        except Exception as exc:  # never let the worker die silently
            self._fail(f"publishing stopped: {exc}", exc)
        finally:
            self._pending.clear()
            self._close_when_possible()
            self._closed.set()

    def _open(self) -> bool:
        desc = self.description
        info = build_scan_info(desc)
        h5maps = build_h5maps(desc)
        if h5maps:
            info["h5maps"] = h5maps
        try:
            store, self._client = _data_store(self.url)
            scan = store.create_scan(desc.identity.as_blissdata(), info=info)
        except (redis.RedisError, RuntimeError, OSError) as exc:
            self._fail(f"cannot reach Redis at {redact_redis_url(self.url)}: {exc}", exc)
            return False
        self._scan = scan
        self.key = scan.key
        self._beat()
        for conv in self._converters:
            definition = Stream.make_definition(conv.column.stream, conv.dtype, conv.shape
                                                if conv.dtype != "json" else None)
            self._streams[conv.column.stream] = scan.create_stream(definition)
        scan.prepare()
        scan.start()
        log.info("Scan %s #%d published as %s", desc.identity.name, desc.identity.number, scan.key)
        return True

    def _publish_until_end(self) -> None:
        while True:
            self._wakeup.wait(self.flush_interval)
            ending = self._end is not None
            self._flush()
            self._check_sinks()
            self._beat()
            if self.problem is not None or (ending and not self._pending):
                return

    def _flush(self) -> None:
        pending = self._pending
        n = len(pending)
        if not n:
            return
        batch = [pending.popleft() for _ in range(n)]
        for conv in self._converters:
            key = conv.column.key
            values = conv.convert([data.get(key) for data in batch])
            stream = self._streams[conv.column.stream]
            if conv.dtype == "json":  # a JSON stream takes one point per send
                for value in values:
                    stream.send(value)
            else:
                stream.send(values)
        self.points_sent += n

    def _check_sinks(self) -> None:
        """Raise when a stream's sink lost Redis, even while nothing is sent: a sink that
        died unnoticed would hang ``scan.stop()`` for ever."""
        broken = [name for name, s in self._streams.items() if sink_is_broken(s)]
        if broken:
            raise ConnectionError(f"Redis connection lost while sending {broken[0]!r}")

    def _beat(self) -> None:
        """A heartbeat every ``heartbeat.PERIOD`` seconds (best effort: Redis may be down)."""
        now = time.monotonic()
        if now - self._last_beat < heartbeat.PERIOD:
            return
        self._last_beat = now
        try:
            heartbeat.beat(self._client, self.key)
        except (redis.RedisError, OSError):
            pass

    def _fail(self, message: str, exc: BaseException | None = None) -> None:
        if self.problem is None:
            self.problem = message
            log.warning("Scan #%d: %s", self.description.identity.number, message,
                        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)
        for stream in self._streams.values():
            if sink_is_broken(stream):
                release_sink(stream)

    def _close_when_possible(self) -> None:
        """Seal and close the published scan, retrying while Redis is unavailable."""
        if self._scan is None:
            return
        try:
            self._check_sinks()
        except ConnectionError as exc:
            self._fail(str(exc), exc)
        if self.problem is not None:  # nothing more will be sent: free the sinks
            for stream in self._streams.values():
                release_sink(stream)
        self._end_wait()
        deadline = time.monotonic() + self.retry_close_for
        delay = 0.1
        while True:
            try:
                if not self._client.exists(self.key):
                    self._gone()
                    return
                self._close_scan()
                return
            except (redis.RedisError, OSError) as exc:
                self._fail(f"cannot close the scan in Redis yet: {exc}", exc)
                if time.monotonic() > deadline:
                    log.error("Scan %s left open in Redis: %s", self.key, exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _gone(self) -> None:
        """The scan is no longer in Redis: nothing to close; free the sinks (a stream
        freed with a live sink would block its thread for ever)."""
        self.problem = self.problem or "the scan is gone from Redis"
        log.error("Scan %s is gone from Redis (restarted without its data, or deleted): "
                  "nothing to close", self.key)
        for stream in self._streams.values():
            release_sink(stream)

    def _end_wait(self) -> None:
        """After a failure, wait for the scan's end (its end reason) before closing."""
        while self._end is None:
            self._wakeup.wait(1.0)
            self._wakeup.clear()
            self._pending.clear()
            self._beat()  # the scan goes on: not abandoned

    def _close_scan(self) -> None:
        scan = self._scan
        if scan.state is ScanState.STARTED:
            scan.stop()
        end = self._end
        info = end_scan_info(end)
        if self.problem is not None:
            info["end_reason"] = "FAILURE"
            info["publication_error"] = self.problem
        h5maps = build_h5maps(self.description, end)
        if h5maps:
            info["h5maps"] = h5maps
        scan.info.update(info)
        scan.close()
        try:
            heartbeat.stop_beating(self._client, scan.key)
        except (redis.RedisError, OSError):
            pass  # it expires by itself
        log.info("Scan %s closed (%s, %d points)", scan.key, info["end_reason"], self.points_sent)
