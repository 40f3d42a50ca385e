"""Publishing one scan into Redis as a blissdata scan, off the scan's thread, losing nothing.

The scan thread only hands records over (:meth:`ScanPublisher.push` appends to a
deque and wakes the publisher's thread). That thread, at most every ``min_gap``
(10 ms) and at least every ``flush_interval`` (30 ms), converts what arrived
into one batch per stream, writes the batches to the local
:mod:`spool <sardana_redis.publishing.spool>` and sends them to Redis. It is an
explicit state machine (:class:`PublisherState`)::

    OPENING ──> PUBLISHING ──> CLOSING ──> CONFIRMING ──> CLOSED
       │          ↑    │          │            │
       └───> RECONNECTING <───────┴────────────┘       (any state) ──> ABANDONED

* OPENING creates the scan (its streams, prepare, start);
* PUBLISHING sends each new batch (one MULTI/EXEC per round, entry ids
  ``<index>-1``: a batch Redis already has is refused, never duplicated);
* RECONNECTING: Redis is down, frozen, or refused a write. Batches keep going to
  the spool; every 2 s, then up to 30 s apart (1 s with Sentinel), the publisher tries again. When
  Redis answers it continues the same scan where Redis stopped (each stream's
  length tells where), creates the scan again if Redis lost it (restarted
  without persistence), or creates it for the first time if Redis was down
  when the scan started; then it sends from the spool whatever Redis lacks.
  A Redis that is full (OOM) is retried the same way: nothing is dropped.
* CLOSING seals the streams and closes the scan with its end (retried the same way);
* With replicas (``wait_replicas`` of a Sentinel URL) every round is acknowledged by that
  many replicas (Redis ``WAIT``) before the next is sent; a round they do not acknowledge
  is handled as Redis unreachable (new connections, which ask the sentinels again). So a
  primary that a failover left behind gets at most one round the promoted node lacks, and
  the promoted node always gets the points in order (entry ids only grow: a point cannot
  be added behind a later one);
* CONFIRMING (with replicas): the scan is closed on the primary; the spool keeps it until
  the replicas acknowledged the close, so a failover right after it loses nothing either;
* CLOSED: the scan is whole in Redis (and its replicas); the spool forgets it.
* ABANDONED: this process stops trying (after ``give_up_after`` seconds without
  Redis once the scan ended, or after an internal error): the spool keeps the
  scan, and the next recorder start (or ``sardana-redis spool replay``) publishes it.

The scan thread is never blocked by Redis or the disk: it learns what happened
through :meth:`ScanPublisher.notices` (one line when Redis is lost, one when the
publisher caught up, one when points could not be kept).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import redis
from blissdata.redis_engine.scan import ScanState

from sardana_redis.custom_data import CustomData
from sardana_redis.datastore import DatabaseNotReady
from sardana_redis.publishing import heartbeat, transport
from sardana_redis.publishing.close_hold import CloseHold
from sardana_redis.publishing.column_batches import ColumnConverter
from sardana_redis.publishing.h5maps import build_h5maps, ended_h5maps
from sardana_redis.publishing.publication import Batch, Publication, StreamPlan, encode
from sardana_redis.publishing.scan_info import build_scan_info, end_scan_info
from sardana_redis.publishing.spool import (
    DEFAULT_MEMORY_LIMIT,
    Spool,
    SpooledScan,
    SpoolUnavailable,
    process_owner,
    spool_for,
)
from sardana_redis.publishing.transport import LiveScan, RedisFull, ScanClosed, ScanGone
from sardana_redis.redis_connection import (
    Backoff,
    NotReplicated,
    ReplicaWait,
    ensure_replicated,
)
from sardana_redis.redis_url import redact_redis_url
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd

log = logging.getLogger(__name__)


class PublisherState(enum.Enum):
    OPENING = "opening"
    PUBLISHING = "publishing"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CONFIRMING = "confirming"
    CLOSED = "closed"
    ABANDONED = "abandoned"


S = PublisherState
#: The allowed transitions (anything else is a bug, raised as such).
TRANSITIONS: dict[PublisherState, frozenset[PublisherState]] = {
    S.OPENING: frozenset({S.PUBLISHING, S.RECONNECTING, S.CONFIRMING, S.CLOSED, S.ABANDONED}),
    S.PUBLISHING: frozenset({S.RECONNECTING, S.CLOSING, S.ABANDONED}),
    S.RECONNECTING: frozenset({S.PUBLISHING, S.CONFIRMING, S.CLOSED, S.ABANDONED}),
    S.CLOSING: frozenset({S.RECONNECTING, S.CONFIRMING, S.ABANDONED}),
    S.CONFIRMING: frozenset({S.RECONNECTING, S.CLOSED, S.ABANDONED}),
    S.CLOSED: frozenset(),
    S.ABANDONED: frozenset(),
}
FINAL = frozenset({S.CLOSED, S.ABANDONED})

#: First retry delay after a failure: 2 s, doubling, at most 30 s (1 s with Sentinel).
RETRY_FIRST = 2.0
#: Batches sent in one MULTI/EXEC when catching up, and their bytes.
ROUND_BATCHES, ROUND_BYTES = 2000, 16 * 1024**2
#: Owner written in the spool for a scan this process gave up: the next replay takes it.
ABANDONED_OWNER = "abandoned"


def nexus_layouts(description: ScanDescription, end: ScanEnd | None = None) -> dict[str, dict]:
    """:func:`build_h5maps`, or none when the scan cannot be laid out (logged): the scan is
    published all the same and the NeXus writer writes its default layout (every stream in
    ``measurement``): nothing measured is lost for a layout."""
    try:
        return build_h5maps(description, end)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        ident = description.identity
        log.error("%s #%s: no NeXus layout (%s): the NeXus writer writes its default one",
                  ident.name, ident.number, exc)
        return {}


def publication_of(description: ScanDescription, converters: list[ColumnConverter]) -> Publication:
    """The blissdata scan a Sardana scan is published as."""
    info = build_scan_info(description)
    h5maps = nexus_layouts(description)
    if h5maps:
        info["h5maps"] = h5maps
    ident = description.identity
    streams = tuple(StreamPlan(c.column.stream, c.dtype, tuple(c.shape)) for c in converters)
    return Publication(f"{ident.name} #{ident.number}", ident.as_blissdata(), info, streams)


def failure_end_info(publication: Publication, why: str) -> dict[str, Any]:
    """The end of a scan whose publisher died before the scan ended."""
    end = ScanEnd(datetime.datetime.now().astimezone().isoformat(), EndReason.FAILURE)
    info = {**end_scan_info(end), "publication_error": why}
    h5maps = publication.info.get("h5maps")
    if isinstance(h5maps, dict) and h5maps:
        info["h5maps"] = ended_h5maps(h5maps, end)
    return info


class ScanPublisher:
    """Publishes one scan, described by a :class:`ScanDescription`, into Redis."""

    def __init__(
        self,
        url: str | None,
        description: ScanDescription | None,
        *,
        spool: Spool | None = None,
        flush_interval: float = 0.03,
        min_gap: float = 0.01,
        give_up_after: float = 86400.0,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        _resumed: SpooledScan | None = None,
    ) -> None:
        self.url = transport.publisher_url(url)
        self.replicas = ReplicaWait.of(self.url)  #: replicas that must hold the scan
        self.description = description
        self.spool = spool if spool is not None else spool_for(None)
        self.flush_interval = flush_interval
        self.min_gap = min_gap
        self.give_up_after = give_up_after
        self.memory_limit = memory_limit
        self.state = S.OPENING
        self.key: str | None = None  #: the blissdata scan key, once created
        self.problem: str | None = None  #: the first problem met (kept for the end warning)
        self.points_taken = 0  #: points handed over by the scan and converted
        self.points_lost = 0  #: points that could be kept neither in the spool nor in memory
        self._converters = [ColumnConverter(c) for c in description.columns] if description else []
        if _resumed is not None:
            self.publication = _resumed.publication
            self._spool_id: int | None = _resumed.id
            self.key = _resumed.scan_key
            self.points_taken = _resumed.points
            self._end_info: dict[str, Any] | None = _resumed.end_info or failure_end_info(
                self.publication, "its MacroServer stopped before the scan was closed in Redis; "
                "closed from the spool with every point it had")
        elif description is not None:
            self.publication = publication_of(description, self._converters)
            self._spool_id = None
            self._end_info = None
        else:
            raise TypeError("ScanPublisher needs a description or a spooled scan to resume")
        self._encoders = self.publication.encoders()
        self._next = {s.name: self.points_taken for s in self.publication.streams}
        self._confirmed = dict.fromkeys(self._next, 0)
        self._pending: deque[Mapping[str, Any]] = deque()
        self._queue: deque[Batch] = deque()  #: batches to send, in order (memory part)
        self._queue_bytes = 0
        self._from_spool: Iterator[Batch] | None = None  #: catching up from the disk part
        self._round: tuple[list[Batch], bool] | None = None  #: batches in flight, from disk?
        self._memory_only = False  #: the disk part failed for this scan: the queue keeps all
        self._spool_told = False
        self._live: LiveScan | None = None
        self._lost_keys: list[str] = []  #: keys Redis lost (restarted without persistence)
        self._client: redis.Redis | None = None
        self._retry_at = 0.0
        self._backoff = Backoff(self.url, RETRY_FIRST)
        self._failing_since: float | None = None
        self._ended_at: float | None = None
        self._last_beat = -math.inf
        self._outage_told = False
        self._notices: deque[tuple[str, str]] = deque()
        self._custom_data: list[CustomData] = []  #: added during or after the scan
        self._hold: CloseHold | None = None  #: keeps the scan open for custom data
        self._delivered = threading.Event()  #: every point in Redis, the close held
        self._end_requested = threading.Event()
        self._wakeup = threading.Event()  #: records to take (set by push)
        self._send_wakeup = threading.Event()  #: batches to send (set by the spooler)
        self._spool_ready = threading.Event()
        self._all_taken = threading.Event()  #: the scan ended and every record is taken
        self._lock = threading.Lock()  #: the send queue and counters, between both threads
        self._done = threading.Event()
        # two threads: one takes records into the spool (never waits on Redis, so a frozen
        # Redis cannot keep records from the disk), one moves batches into Redis
        self._spooler = threading.Thread(target=self._spool_loop, daemon=True,
                                         name=f"spooler-{self.publication.label}")
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"publisher-{self.publication.label}")

    @classmethod
    def resume(cls, url: str | None, spool: Spool, scan: SpooledScan, **kw: Any) -> ScanPublisher:
        """A publisher for a scan the spool holds whose publisher died (a replay)."""
        publisher = cls(url or scan.url, None, spool=spool, _resumed=scan, **kw)
        publisher._end_requested.set()
        return publisher

    # --- the scan thread's side ------------------------------------------

    def start(self) -> None:
        """Start publishing in the background."""
        self._spooler.start()
        self._thread.start()

    def push(self, data: Mapping[str, Any]) -> None:
        """Queue one record's data (``record.data``); cheap, never blocks. The publisher's
        thread is woken (once per cycle) so that the record reaches the spool within
        ``min_gap`` seconds: a MacroServer killed right after loses next to nothing."""
        self._pending.append(data)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def add_custom_data(self, item: CustomData) -> bool:
        """Custom data added while the scan runs or after its end; False when the scan
        is already closed (or being closed) in Redis: then it cannot be published."""
        with self._lock:
            if self.state in FINAL or self.state in (S.CLOSING, S.CONFIRMING):
                return False
            self._custom_data.append(item)
        return True

    def finish(self, end: ScanEnd, wait: float = 10.0, hold: CloseHold | None = None) -> bool:
        """Ask for the scan to be closed with ``end``; wait up to ``wait`` seconds.

        Returns True when the scan is closed in Redis (False: it still is being
        published, from the spool, in the background). Returns at once while Redis is
        known to be unreachable: the next scan must not wait for it. With a ``hold``,
        the scan stays open (every point in Redis) until the hold is released, for
        custom data added after the end (:meth:`add_custom_data`); True then means
        every point is in Redis.
        """
        self._hold = hold
        info = end_scan_info(end)
        h5maps = nexus_layouts(self.description, end) if self.description else {}
        if h5maps:
            info["h5maps"] = h5maps
        self._end_info = info
        self._end_requested.set()
        self._wakeup.set()
        deadline = time.monotonic() + wait
        while not self._done.wait(0.02):  # no waiting on a Redis known to be away
            if self._delivered.is_set():
                return True
            if time.monotonic() > deadline or self._failing_since is not None:
                return False
        return self.state is S.CLOSED

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the publisher is done (closed or abandoned)."""
        return self._done.wait(timeout)

    def notices(self) -> list[tuple[str, str]]:
        """What the user should be told since the last call: ``(level, message)`` pairs,
        level ``"warning"`` or ``"info"``."""
        out = []
        while self._notices:
            out.append(self._notices.popleft())
        return out

    @property
    def has_notices(self) -> bool:
        """True when :meth:`notices` has something (cheap: for the scan thread)."""
        return bool(self._notices)

    @property
    def points_held(self) -> int:
        """Points the scan handed over that Redis has not acknowledged yet."""
        confirmed = min(self._confirmed.values(), default=0)
        return max(0, min(self._next.values(), default=0) - confirmed)

    @property
    def placeholders(self) -> dict[str, int]:
        """Values replaced by placeholders, per stream (only those with some)."""
        return {c.column.stream: c.placeholders for c in self._converters if c.placeholders}

    @property
    def points_sent(self) -> int:
        """Points Redis acknowledged (every stream)."""
        return min(self._confirmed.values(), default=0)

    # --- the state machine -------------------------------------------------

    def _to(self, state: PublisherState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"publisher of {self.publication.label}: "
                               f"{self.state.name} -> {state.name} is not allowed")
        log.debug("%s: %s -> %s", self.publication.label, self.state.name, state.name)
        self.state = state

    def _spool_loop(self) -> None:
        """Records -> batches -> spool (and send queue), at most every ``min_gap``."""
        try:
            self._keep_in_spool()
            self._spool_ready.set()
            last = 0.0
            while True:
                self._wakeup.wait(self.flush_interval)
                gap = self.min_gap - (time.monotonic() - last)
                if gap > 0:  # batches of at least min_gap: bounded cost per point
                    time.sleep(gap)
                self._wakeup.clear()
                last = time.monotonic()
                ending = self._end_requested.is_set()
                self._take()
                if ending and not self._pending:
                    self._ended_at = time.monotonic()  # the end goes to the spool too
                    self._spool_call(self.spool.set_end, self._spool_id, json.dumps(self._end_info))
                    return
        except Exception:  # a bug: what is spooled stays for a replay
            log.exception("Spooler of %s failed", self.publication.label)
        finally:
            self._spool_ready.set()
            self._all_taken.set()
            self._send_wakeup.set()

    def _run(self) -> None:
        try:
            self._spool_ready.wait()
            while self.state not in FINAL:
                self._send_wakeup.wait(self.flush_interval)
                self._send_wakeup.clear()
                if time.monotonic() >= self._retry_at:
                    self._step()
                elif self._should_give_up():
                    self._abandon("Redis unreachable for too long after the scan ended")
        except Exception as exc:  # a bug: the spool keeps the scan for a replay
            log.exception("Publisher of %s failed", self.publication.label)
            self._abandon(f"publisher error: {type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def _step(self) -> None:
        try:
            if self.state in (S.OPENING, S.RECONNECTING):
                self._connect()
            if self.state is S.PUBLISHING:
                self._send()
                self._beat()
                if self._all_taken.is_set() and self._caught_up():
                    if self._hold is not None and not self._hold.released:
                        self._delivered.set()
                    else:
                        with self._lock:  # no custom data accepted from now on
                            self._to(S.CLOSING)
            if self.state is S.CLOSING:
                self._close()
            if self.state is S.CONFIRMING:
                self._confirm()
        except ScanClosed as exc:
            self._closed_elsewhere(str(exc))
        except RedisFull as exc:
            self._failed(f"Redis is full (maxmemory reached), retrying while the memory "
                         f"tracker frees space: {exc}")
        except NotReplicated as exc:
            self._failed(f"Redis replicas not acknowledging: {exc}")
        except (redis.RedisError, OSError, DatabaseNotReady, ScanGone) as exc:
            reason = (f"Redis is full: {exc}" if transport.is_oom(exc) else
                      f"Redis at {redact_redis_url(self.url)} unreachable "
                      f"({type(exc).__name__}: {exc})")
            self._failed(reason)

    def _failed(self, reason: str) -> None:
        """Redis failed us: retry later, keep everything in the spool meanwhile."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self.problem = self.problem or reason
            log.warning("%s: %s; buffering locally (%d points held, spool %s)",
                        self.publication.label, reason, self.points_held, self.spool.folder)
            if not self._outage_told:
                self._outage_told = True
                what = ("Redis is full" if "full" in reason else
                        "Redis replicas not acknowledging" if "replicas" in reason else
                        "Redis unreachable")
                until = " until the memory tracker frees space" if "full" in reason else ""
                self._notices.append(("warning", f"{what}: buffering locally, "
                                      f"{self.points_held} points held in {self.spool.folder}"
                                      f"{until}"))
        else:
            log.debug("%s: still failing: %s", self.publication.label, reason)
        self._retry_at = now + self._backoff.next()
        with self._lock:
            self._round = None
            self._from_spool = None
            if not self._memory_only:  # resent from the disk part once Redis is back
                self._queue.clear()
                self._queue_bytes = 0
            if self.state is not S.RECONNECTING:
                self._to(S.RECONNECTING)

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        outage = time.monotonic() - self._failing_since
        self._failing_since = None
        self._backoff.reset()
        log.info("%s: Redis is back after %.0f s: continuing scan %s", self.publication.label,
                 outage, self.key)

    def _should_give_up(self) -> bool:
        return (self._ended_at is not None and self._failing_since is not None
                and time.monotonic() - self._ended_at > self.give_up_after)

    # --- connecting ----------------------------------------------------------

    def _connect(self) -> None:
        store, self._client = transport.data_store(self.url)
        live = self._live
        if live is not None and not self._client.exists(live.key):
            log.error("%s: Redis came back without scan %s (restarted without persistence, "
                      "or deleted): publishing it again whole from the spool",
                      self.publication.label, live.key)
            live.release()
            live = self._live = None
        if live is None and self.key is not None and self.state is S.OPENING:
            try:  # a replay: the scan of a publisher that died
                live = transport.reopen(store, self.key, self.publication)
            except ScanGone:
                log.error("%s: scan %s is no longer in Redis: publishing it again whole from "
                          "the spool", self.publication.label, self.key)
        if live is None:
            if self.key is not None and self.key not in self._lost_keys:
                self._lost_keys.append(self.key)
            live = transport.create(store, self.publication, self._lost_keys)
            if self.key is not None:
                self._notices.append(("warning", f"Redis lost scan {self.key}: published "
                                                 f"again as {live.key}"))
        if live.key != self.key:
            self.key = live.key
            self._spool_call(self.spool.set_key, self._spool_id, live.key)
            log.info("Scan %s published as %s", self.publication.label, live.key)
        self._live = live
        self._last_beat = -math.inf
        lengths, sealed = transport.stream_lengths(self._client, live)
        if transport.redis_state(store, live.key) is ScanState.CLOSED or sealed and any(
                lengths[name] < self._next[name] for name in self._next):
            raise ScanClosed(f"{live.key} was closed in Redis while its publisher was away")
        with self._lock:
            self._resume_at(lengths)
            self._to(S.PUBLISHING)
        if not self.replicas.replicas:  # with replicas: once they acknowledge (_send)
            self._recovered()

    def _resume_at(self, lengths: dict[str, int]) -> None:
        """Send again whatever Redis lacks, from ``lengths`` on."""
        self._confirmed = {name: min(lengths.get(name, 0), self._next[name])
                           for name in self._next}
        if self._spool_id is not None:
            self._from_spool = self.spool.batches(self._spool_id, dict(self._confirmed))
        if not self._memory_only or self._spool_id is not None and self.spool.error is None:
            return  # the disk part fills in what the memory part lacks
        self._queue = deque(b for b in self._queue if b.end > self._confirmed[b.stream])
        self._queue_bytes = sum(len(b.payload) for b in self._queue)
        first: dict[str, int] = {}
        for b in self._queue:
            first.setdefault(b.stream, b.start)
        gap = min((start - self._confirmed[name] for name, start in first.items()), default=0)
        if gap > 0:  # Redis lost points only it held (the spool could not keep them):
            # the streams go on without a hole, the points are counted as lost
            log.error("%s: Redis lost %d points that only it held (the spool could not keep "
                      "them)", self.publication.label, gap)
            self._lose(gap)
            self._queue = deque(dataclasses.replace(b, start=b.start - gap) for b in self._queue)
            for name in self._next:
                self._next[name] -= gap

    # --- records in, batches out --------------------------------------------

    def _keep_in_spool(self) -> None:
        if self._spool_id is not None:
            return
        try:
            self._spool_id = self.spool.add_scan(self.publication, self.url)
        except SpoolUnavailable as exc:
            self._spool_trouble(str(exc))

    def _spool_call(self, func: Any, *args: Any) -> bool:
        if self._spool_id is None:
            return False
        try:
            func(*args)
            return True
        except SpoolUnavailable as exc:
            self._spool_trouble(str(exc))
            return False

    def _spool_trouble(self, message: str) -> None:
        self._memory_only = True
        if not self._spool_told:
            self._spool_told = True
            log.warning("%s: %s: keeping points in memory (up to %g MB)",
                        self.publication.label, message, self.memory_limit / 1e6)
            self._notices.append(("warning", f"{message}: points are kept in memory only "
                                             f"(up to {self.memory_limit / 1e6:g} MB)"))

    def _take(self) -> None:
        """Records the scan handed over -> one batch per stream -> spool and send queue."""
        if self._pending:
            with self._lock:
                self._take_locked()
            self._send_wakeup.set()

    def _take_locked(self) -> None:
        pending = self._pending
        n = len(pending)
        records = [pending.popleft() for _ in range(n)]
        batches: list[Batch] = []
        for conv in self._converters:
            name = conv.column.stream
            values = conv.convert([data.get(conv.column.key) for data in records])
            encoder, start = self._encoders[name], self._next[name]
            if conv.dtype == "json":  # a JSON stream takes one point per entry
                batches.extend(encode(encoder, name, start + i, v) for i, v in enumerate(values))
            else:
                batches.append(encode(encoder, name, start, values))
        size = sum(len(b.payload) for b in batches)
        if self._memory_only or not self._spool_call(self.spool.append, self._spool_id, batches):
            self._memory_only = True
            if self._queue_bytes + size > self.memory_limit:
                self._lose(n)
                return
        for name in self._next:
            self._next[name] += n
        self.points_taken += n
        if not self._memory_only and (self.state is not S.PUBLISHING or self._from_spool):
            return  # sent from the disk part once Redis is back (or while catching up)
        self._queue.extend(batches)
        self._queue_bytes += size

    def _lose(self, n: int) -> None:
        """``n`` points could be kept nowhere: counted, told once (the end tells the total)."""
        if not self.points_lost:
            why = (f"Redis unavailable, spool unavailable ({self.spool.error}) and "
                   f"{self.memory_limit / 1e6:g} MB of memory full")
            log.error("%s: points lost from now on: %s", self.publication.label, why)
            self._notices.append(("warning", f"points lost from now on: {why}"))
        self.points_lost += n
        self.problem = f"{self.points_lost} points lost"

    def _caught_up(self) -> bool:
        return self._from_spool is None and not self._queue

    def _send(self) -> None:
        """Send what Redis lacks: first from the disk part (catching up), then the queue.
        A round that fails is sent again whole (Redis refuses what it already has)."""
        while True:
            if self._round is None:
                with self._lock:
                    self._round = self._next_round()
            batches, from_disk = self._round
            if not batches:
                self._round = None
                break
            client, live, _ = self._connection()
            transport.send(client, live, batches)
            if self.replicas.replicas:  # the next round only once the replicas hold this one
                ensure_replicated(client, self.replicas, f"{len(batches)} batch(es)")
            with self._lock:
                for b in batches:
                    self._confirmed[b.stream] = max(self._confirmed[b.stream], b.end)
                if not from_disk:
                    for _ in batches:
                        self._queue_bytes -= len(self._queue.popleft().payload)
                self._round = None
        self._recovered()  # every round acknowledged (by the replicas, if any)
        if self._outage_told and self._caught_up():
            self._outage_told = False
            self._notices.append(("info", f"Redis reachable again: caught up, {self.key} "
                                          f"holds {self.points_sent} points"))

    def _connection(self) -> tuple[redis.Redis, LiveScan, str]:
        """The client, the scan in Redis and its key: ``_connect`` sets them before any
        state that uses them (a bug otherwise)."""
        if self._client is None or self._live is None or self.key is None:
            raise RuntimeError(f"{self.publication.label}: used before connecting to Redis")
        return self._client, self._live, self.key

    def _next_round(self) -> tuple[list[Batch], bool]:
        """The next batches to send (bounded in count and bytes), and whether from disk."""
        batches: list[Batch] = []
        size = 0
        while self._from_spool is not None and len(batches) < ROUND_BATCHES and size < ROUND_BYTES:
            try:
                b = next(self._from_spool, None)
            except SpoolUnavailable as exc:
                log.error("%s: %s: sending what memory holds", self.publication.label, exc)
                b = None
            if b is None:
                self._from_spool = None
            else:
                batches.append(b)
                size += len(b.payload)
        if batches:
            return batches, True
        while self._queue and self._queue[0].end <= self._confirmed[self._queue[0].stream]:
            self._queue_bytes -= len(self._queue.popleft().payload)  # sent from the disk part
        for b in self._queue:
            if len(batches) >= ROUND_BATCHES or size >= ROUND_BYTES:
                break
            batches.append(b)
            size += len(b.payload)
        return batches, False

    def _beat(self) -> None:
        """A heartbeat every ``heartbeat.PERIOD`` seconds."""
        now = time.monotonic()
        if now - self._last_beat >= heartbeat.PERIOD:
            client, _, key = self._connection()
            heartbeat.beat(client, key)
            self._last_beat = now

    # --- the end ---------------------------------------------------------------

    def _close(self) -> None:
        client, live, key = self._connection()
        if self._end_info is None:
            raise RuntimeError(f"{self.publication.label}: closed before the scan ended")
        info = dict(self._end_info)
        if self._custom_data:
            sardana = self.publication.info.get("sardana")
            sardana = dict(sardana) if isinstance(sardana, dict) else {}
            before = sardana.get("custom_data")
            if not isinstance(before, list):
                before = []
            info["sardana"] = {**sardana,
                               "custom_data": [*before, *(c.to_json() for c in self._custom_data)]}
        if self.points_lost:
            info["end_reason"] = EndReason.FAILURE.value
            info["publication_error"] = f"{self.points_lost} points lost: {self.problem}"
        transport.close(client, live, info)
        try:
            heartbeat.stop_beating(client, key)
        except (redis.RedisError, OSError):
            pass  # it expires by itself
        self._to(S.CONFIRMING)
        if self.replicas.replicas:  # the macro need not wait for the replicas
            self._delivered.set()
        log.info("Scan %s closed (%s, %d points)", self.key, info["end_reason"], self.points_sent)

    def _confirm(self) -> None:
        """Forget the scan once ``replicas`` replicas hold its close (:class:`NotReplicated`
        otherwise: retried as Redis unreachable, the spool keeping the scan)."""
        if self.replicas.replicas:
            if self._client is None:  # _connect sets it first (a replay of a closed scan too)
                raise RuntimeError(f"{self.publication.label}: confirmed before connecting")
            ensure_replicated(self._client, self.replicas, f"the close of {self.key}")
            self._recovered()
        self._to(S.CLOSED)
        self._spool_call(self.spool.forget, self._spool_id)

    def _closed_elsewhere(self, why: str) -> None:
        """The scan was closed in Redis by someone else (the memory tracker, while this
        publisher was away): what Redis lacks cannot be added any more."""
        in_redis = self.points_sent
        try:
            store, _ = transport.data_store(self.url)
            in_redis = max(in_redis, transport.points_in_closed_scan(store, self.key))
        except (redis.RedisError, OSError, DatabaseNotReady, ScanGone):
            pass
        missing = max(0, self.points_taken - in_redis)
        if not missing:
            log.info("%s: %s, with every point it had (%d): nothing more to publish",
                     self.publication.label, why, in_redis)
            self._to(S.CONFIRMING)  # forgotten once the replicas hold it (at once without)
            return
        log.error("%s: %s: %d points it lacks cannot be published any more",
                  self.publication.label, why, missing)
        self.points_lost += missing
        self.problem = self.problem or why
        self._notices.append(("warning", f"{missing} points lost: {why}"))
        self._abandon(why, keep=False)

    def _abandon(self, why: str, keep: bool = True) -> None:
        """Stop trying in this process; with ``keep``, the spool keeps the scan for a replay."""
        if self.state in FINAL:
            return
        if self._live is not None:
            self._live.release()
        if keep and self._spool_id is not None:
            self._spool_call(self.spool.claim, self._spool_id, process_owner(), ABANDONED_OWNER)
            self._notices.append(("warning", f"{self.publication.label} is kept in the spool "
                                             f"{self.spool.folder}: {why}; 'sardana-redis spool "
                                             f"replay' publishes it"))
        elif not keep and self._spool_id is not None:
            self._spool_call(self.spool.forget, self._spool_id)
        log.error("%s: publication abandoned: %s", self.publication.label, why)
        self.problem = self.problem or why
        self.state = S.ABANDONED
