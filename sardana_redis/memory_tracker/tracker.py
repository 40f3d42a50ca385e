"""The memory tracker: Redis never fills up, and no scan data goes before it is on disk.

Each monitoring cycle (pipelined: a few round trips whatever the number of scans):

1. follow new scans (blissdata's scan history, capped to the last 2048 scans, and
   blissdata's search at start and whenever scans may have left the history unseen)
   and the state of open ones;
2. a closed scan that every configured writer has finished with (see the
   writers' ledgers) gets its expiration (``closed_scan_deletion``); one a
   writer still has to write keeps no expiration. A writer is waited for only while
   it is alive (its instances' heartbeat in its ledger) and ``writer_grace`` seconds
   after: then the scans it has not written are expired without it, with an ERROR
   naming it (a writer that followed this Redis once and is gone must not fill it up);
3. an open scan is closed as FAILURE (its publisher died) and then treated as
   closed: after ``publisher_timeout`` without data nor heartbeat when its publisher
   sends heartbeats (ours do, see :mod:`sardana_redis.publishing.heartbeat`), else after
   ``inactive_scan_deletion`` without activity;
4. above ``cleaning_threshold`` % of ``maxmemory`` memory is freed, down to
   ``FREE_MARGIN`` below the threshold, in this order: closed scans every
   writer has finished with (oldest first); the points writers have already
   saved, in the streams of scans still being written; then, only when
   ``unsaved_threshold`` is set (by default never: publishers keep what a full
   Redis refuses in their spool) and exceeded, unsaved data: closed scans
   (oldest first), then streams of open scans older than ``protected_history``
   seconds, and the protected history last. Every unsaved drop is logged as an ERROR naming
   the scan, its streams and points.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import redis

from sardana_redis.following.ledger import KEY_PREFIX as WRITER_PREFIX
from sardana_redis.following.ledger import last_beat, timetag_score, writer_names
from sardana_redis.memory_tracker import scan_keys
from sardana_redis.memory_tracker.scan_keys import ScanKeys
from sardana_redis.memory_tracker.settings import SettingError, TrackerSettings
from sardana_redis.redis_connection import Backoff

__all__ = ["MemoryTracker", "TrackerCounters", "TrackerSettings", "run"]

log = logging.getLogger(__name__)

#: Freeing goes this many % of maxmemory below the cleaning threshold (hysteresis).
FREE_MARGIN = 10
#: Scans deleted per step while freeing memory, between two memory readings.
DELETE_CHUNK = 50


def format_bytes(nbytes: float) -> str:
    """``4GB``, ``2.531MB``: the units blissdata's tracker prints (powers of 1024)."""
    if nbytes <= 0:
        return "0B"
    suffixes = ["B", "KB", "MB", "GB", "TB", "PB"]
    exp = min(int(math.log(nbytes, 1024)), len(suffixes) - 1)
    return f"{nbytes / 1024**exp:.4g}{suffixes[exp]}"


@dataclass
class TrackerCounters:
    """What the tracker has done (Tango attributes, status)."""

    used_memory: int = 0
    max_memory: int = 0
    tracked_scans: int = 0
    freed_bytes: int = 0
    expired_scans: int = 0
    closed_abandoned: int = 0
    dropped_unpersisted_scans: int = 0
    dropped_unpersisted_entries: int = 0
    last_cycle_seconds: float = 0.0
    last_drop: str = ""
    writers: tuple[str, ...] = field(default_factory=tuple)
    gone_writers: tuple[str, ...] = field(default_factory=tuple)  #: not waited for any more


class MemoryTracker:
    """Tracks the scans of one Redis and keeps its memory under control."""

    def __init__(self, client: redis.Redis, settings: TrackerSettings) -> None:
        settings.check()
        self.client = client
        self.settings = settings
        self.counters = TrackerCounters()
        self._since = "0-0"
        self._scans: dict[str, ScanKeys] = {}
        self._last_seen: float | None = None  #: when a cycle last read Redis
        self._searched = False  #: the scans were searched for since the start
        self._noticed: dict[str, float] = {}  #: when a writer without heartbeat was first seen

    # --- set-up -----------------------------------------------------------

    def max_memory(self) -> int:
        """The server's maxmemory, or ``settings.max_memory``; ValueError when neither."""
        # INFO, not CONFIG GET: an ACL user allowed CONFIG GET could read requirepass
        configured = int(self.client.info("memory")["maxmemory"])
        limit = configured or self.settings.max_memory or 0
        if not limit:
            raise SettingError("max_memory", "is needed: Redis has no 'maxmemory' configured "
                                             "(set it in blredis.conf, or CONFIG SET maxmemory)")
        self.counters.max_memory = limit
        return limit

    def log_init(self) -> None:
        """The INIT lines users know from blissdata's memory_tracker."""
        limit = self.max_memory()
        s = self.settings
        if s.max_memory and s.max_memory != limit:
            log.warning("--max-memory %s ignored: Redis' own maxmemory is %s",
                        format_bytes(s.max_memory), format_bytes(limit))
        log.info("INIT | Redis max. memory: %s", format_bytes(limit))
        log.info("INIT | Mem. usage to trigger cleanup: %d%% (%s)", s.cleaning_threshold,
                 format_bytes(limit * s.cleaning_threshold // 100))
        log.info("INIT | Protected history length: %g seconds", s.protected_history)
        log.info("INIT | Writers whose data is kept until saved: %s",
                 ", ".join(self.writers()) or "none")

    def writers(self) -> tuple[str, ...]:
        """Configured writers, or every writer that ever followed this Redis."""
        if self.settings.writers is not None:
            return self.settings.writers
        return tuple(writer_names(self.client))

    # --- one cycle ---------------------------------------------------------

    def cycle(self) -> int:
        """One monitoring cycle; returns the memory used at its end, in bytes."""
        t0 = time.perf_counter()
        now = time.time()
        self.counters.writers = self.writers()
        writers = self._waited_writers(self.counters.writers, now)
        self._discover()
        open_scans = [s for s in self._scans.values() if not s.closed]
        self._refresh(open_scans, now)
        self._forgive_blind_time(open_scans, now)
        done = self._finished_by_writers(writers)
        self._expire_finished(done, self.counters.gone_writers)
        self._close_abandoned(now, done)
        used = self._used_memory()
        log.info("Memory usage: %s", format_bytes(used))
        limit = self.max_memory()  # may have been changed with CONFIG SET
        if used >= limit * self.settings.cleaning_threshold // 100:
            used = self._free(used, limit, writers, done, now)
        self.counters.tracked_scans = len(self._scans)
        self.counters.last_cycle_seconds = time.perf_counter() - t0
        return used

    def period(self, used: int) -> float:
        """Seconds until the next cycle: shorter as memory fills up (stay ahead of the limit)."""
        limit = self.counters.max_memory or 1
        if used >= limit * (self.settings.cleaning_threshold - FREE_MARGIN) // 100:
            return min(1.0, self.settings.monitoring_period)
        return self.settings.monitoring_period

    def _used_memory(self) -> int:
        used = int(self.client.info("memory")["used_memory"])
        self.counters.used_memory = used
        return used

    def _waited_writers(self, writers: Sequence[str], now: float) -> tuple[str, ...]:
        """The writers still waited for: alive (a heartbeat in their ledger), or silent for
        less than ``writer_grace``; a writer never heard of counts from when the tracker
        first listed it. Logs (ERROR) once each writer given up, and its return."""
        waited, gone = [], []
        for name in writers:
            beat = last_beat(self.client, name)
            silent = now - (beat if beat is not None else self._noticed.setdefault(name, now))
            if silent <= self.settings.writer_grace:
                waited.append(name)
                if name in self.counters.gone_writers:
                    log.warning("Writer %r is alive again: its scans are kept until it "
                                "saved them", name)
                continue
            gone.append(name)
            if name not in self.counters.gone_writers:
                log.error("Writer %r not alive for %s (%s; --writer-grace %s): the scans it "
                          "has not written are expired without it", name,
                          timedelta(seconds=int(silent)),
                          "no heartbeat ever, counted from the tracker's start" if beat is None
                          else "since its last heartbeat",
                          timedelta(seconds=self.settings.writer_grace))
        self.counters.gone_writers = tuple(gone)
        return tuple(waited)

    def _discover(self) -> None:
        first = scan_keys.history_start(self.client)
        if not self._searched or (first is not None and self._since != "0-0"
                                  and timetag_score(first) > timetag_score(self._since)):
            # scans created while nobody read the capped history: only a search finds them
            self._searched = True
            try:
                self._track(scan_keys.search_scans(self.client))
            except redis.ResponseError as exc:  # e.g. an ACL user without FT.SEARCH
                log.warning("Cannot search the scans in Redis (%s): scans no longer in the "
                            "scan history are not tracked (see users.conf.example)", exc)
        while True:
            self._since, created = scan_keys.new_scans(self.client, self._since)
            if not created:
                break
            self._track(created)
        scans = list(self._scans.values())
        for scan, exists in zip(scans, scan_keys.existing(self.client, scans), strict=True):
            if not exists:
                del self._scans[scan.key]

    def _track(self, created: list[tuple[str, int]]) -> None:
        unknown = [c for c in created if c[0] not in self._scans]
        for scan in scan_keys.load_keys(self.client, unknown):
            scan.last_activity = time.time()  # a restarted tracker gives every scan a fresh start
            self._scans.setdefault(scan.key, scan)

    def _refresh(self, scans: Sequence[ScanKeys], now: float) -> None:
        """States and activity of open scans (a new data entry, state or heartbeat is activity)."""
        before = {s.key: (s.state, dict(s.last_ids), s.heartbeat) for s in scans}
        # streams appear in the scan document at prepare: reload keys of young scans
        for fresh in scan_keys.load_keys(self.client, [(s.key, s.created_ms) for s in scans
                                                       if not s.data_keys]):
            self._scans[fresh.key].data_keys = fresh.data_keys
        scan_keys.refresh_states(self.client, scans)
        for scan in scans:
            if (scan.state, scan.last_ids, scan.heartbeat) != before[scan.key]:
                scan.last_activity = now

    def _forgive_blind_time(self, scans: Sequence[ScanKeys], now: float) -> None:
        """Time the tracker could not see Redis (down, frozen) is no publisher's silence:
        publishers could not write either. After such a gap every open scan starts afresh."""
        last, self._last_seen = self._last_seen, now
        if last is not None and now - last > 2 * self.settings.monitoring_period + 10:
            log.info("Redis was out of sight for %.0f s: open scans get a fresh start",
                     now - last)
            for scan in scans:
                scan.last_activity = now

    def _finished_by_writers(self, writers: Sequence[str]) -> set[str]:
        """Closed scans every writer has finished with (all closed scans with no writer)."""
        closed = [s.key for s in self._scans.values() if s.closed]
        if not writers or not closed:
            return set(closed)
        pipe = self.client.pipeline(transaction=False)
        for name in writers:
            pipe.hmget(f"{WRITER_PREFIX}:{name}:done", closed)
        replies = pipe.execute()
        return {key for i, key in enumerate(closed) if all(r[i] is not None for r in replies)}

    def _saved_points(self, writers: Sequence[str], keys: list[str]) -> dict[str, float]:
        """Points every writer has on disk, per scan being written (infinite: every writer
        is done with it)."""
        if not writers or not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for name in writers:
            pipe.hmget(f"{WRITER_PREFIX}:{name}:points", keys)
            pipe.hmget(f"{WRITER_PREFIX}:{name}:done", keys)
        replies = pipe.execute()
        saved: dict[str, float] = {}
        for i, key in enumerate(keys):
            counts: list[float] = []
            for points, done in zip(replies[0::2], replies[1::2], strict=True):
                counts.append(math.inf if done[i] is not None else int(points[i] or 0))
            if min(counts) > 0:
                saved[key] = min(counts)
        return saved

    def _expire_finished(self, done: set[str], gone: Sequence[str] = ()) -> None:
        ttl = self.settings.closed_scan_deletion
        scans = [s for k, s in self._scans.items() if k in done and not s.expiring]
        if not scans:
            return
        self._report_unwritten(scans, gone)
        scan_keys.expire(self.client, scans, ttl)
        for scan in scans:
            scan.expiring = True
            log.info("Scan %s is terminated, expiration set to %s seconds",
                     scan.key, timedelta(seconds=ttl))
        self.counters.expired_scans += len(scans)

    def _report_unwritten(self, scans: list[ScanKeys], gone: Sequence[str]) -> None:
        """Log (ERROR) each scan expired before a writer given up (``gone``) wrote it."""
        if not gone:
            return
        keys = [s.key for s in scans]
        pipe = self.client.pipeline(transaction=False)
        for name in gone:
            pipe.hmget(f"{WRITER_PREFIX}:{name}:done", keys)
        replies = pipe.execute()
        for i, scan in enumerate(scans):
            missing = [name for name, reply in zip(gone, replies, strict=True) if reply[i] is None]
            if missing:
                log.error("Scan %s (#%s %s) expires unwritten by writer(s) %s (not alive)",
                          scan.key, scan.number, scan.name, ", ".join(missing))

    def _abandoned_after(self, scan: ScanKeys) -> tuple[float, str]:
        """Seconds of silence after which an open scan is abandoned, and what was silent."""
        if scan.heartbeat is not None:
            return self.settings.publisher_timeout, "no data and no heartbeat from its publisher"
        return self.settings.inactive_scan_deletion, "publisher inactive"

    def _close_abandoned(self, now: float, done: set[str]) -> None:
        for scan in [s for s in self._scans.values() if not s.closed]:
            limit, silent = self._abandoned_after(scan)
            if now - scan.last_activity < limit:
                continue
            reason = f"{silent} for {timedelta(seconds=limit)}: closed by the memory tracker"
            try:
                scan_keys.close_as_failed(self.client, scan, reason)
            except redis.ResponseError as exc:
                log.error("Open scan %s inactive but cannot be closed: %s", scan.key, exc)
                continue
            log.warning("Open scan %s was inactive for %s seconds, closed as FAILURE",
                        scan.key, timedelta(seconds=limit))
            self.counters.closed_abandoned += 1

    # --- freeing memory --------------------------------------------------

    def _free(self, used: int, limit: int, writers: Sequence[str], done: set[str],
              now: float) -> int:
        """Free saved data down to ``FREE_MARGIN`` below the cleaning threshold; unsaved data
        only as long as the unsaved threshold (never below the cleaning one) is exceeded."""
        s = self.settings
        target = limit * max(s.cleaning_threshold - FREE_MARGIN, 1) // 100
        trigger = (limit * max(s.cleaning_threshold, s.unsaved_threshold) // 100
                   if s.unsaved_threshold else math.inf)
        start = used
        oldest = sorted(self._scans.values(), key=lambda s: s.created_ms)
        # 1. closed scans every writer has finished with
        used = self._delete(used, target, [s for s in oldest if s.key in done], saved=True)
        # 2. points writers saved, in scans still being written
        if used > target:
            live = [s for s in oldest if s.key not in done]
            saved = self._saved_points(writers, [s.key for s in live])
            for scan in live:
                if scan.key in saved and saved[scan.key] != math.inf:
                    scan_keys.trim_before(self.client, scan, int(saved[scan.key]))
            used = self._used_memory()
        # 3. to keep Redis alive: unsaved closed scans, oldest first
        if used > trigger:
            unsaved = [s for s in oldest if s.closed and s.key not in done]
            used = self._delete(used, trigger, unsaved, saved=False)
        # 4. unsaved history of open scans: older than the protected history, then the rest
        if used > trigger:
            used = self._trim_unsaved(used, trigger, now, protect=True)
        if used > trigger:
            used = self._trim_unsaved(used, trigger, now, protect=False)
        self.counters.freed_bytes += max(start - used, 0)
        if used > trigger:
            log.critical("Unable to free memory ! %s still used (threshold %s)",
                         format_bytes(used), format_bytes(trigger))
        elif used > limit * s.cleaning_threshold // 100:
            log.warning("%s used: the rest is data the writers have not saved yet, kept (%s)",
                        format_bytes(used),
                        f"dropped only above {max(s.cleaning_threshold, s.unsaved_threshold)}%"
                        " of maxmemory" if s.unsaved_threshold else
                        "never dropped: publishers hold what Redis refuses in their spools")
        return used

    def _delete(self, used: int, target: float, scans: list[ScanKeys], saved: bool) -> int:
        """Delete scans, oldest first, until ``target``: saved ones by chunks, unsaved one
        by one."""
        step = DELETE_CHUNK if saved else 1
        for i in range(0, len(scans), step):
            if used <= target:
                break
            chunk = scans[i:i + step]
            if not saved:
                for scan in chunk:
                    self._report_drop(scan, "the whole scan")
                self.counters.dropped_unpersisted_scans += len(chunk)
            scan_keys.delete(self.client, chunk)
            for scan in chunk:
                self._scans.pop(scan.key, None)
            used = self._used_memory()
        return used

    def _trim_unsaved(self, used: int, target: float, now: float, protect: bool) -> int:
        """Drop the oldest ``cleaning_time_slice`` % of each open scan's unsaved points."""
        horizon = now - self.settings.protected_history
        for scan in sorted((s for s in self._scans.values() if not s.closed),
                           key=lambda s: s.created_ms):
            if used <= target:
                break
            if protect and scan.created_ms / 1000 > horizon:
                continue
            points = self._stream_points(scan)
            cut = points * self.settings.cleaning_time_slice // 100
            if cut <= 0:
                continue
            entries = scan_keys.trim_before(self.client, scan, cut)
            if entries:
                self.counters.dropped_unpersisted_entries += entries
                self._report_drop(scan, f"points 0-{cut - 1} of every stream"
                                        + ("" if protect else " (protected history)"))
            used = self._used_memory()
        return used

    def _stream_points(self, scan: ScanKeys) -> int:
        ids = [i.decode() for i in scan.last_ids.values() if i.decode() != scan_keys.SEAL_ID]
        return max((int(i.split("-")[0]) for i in ids), default=0)

    def _report_drop(self, scan: ScanKeys, what: str) -> None:
        message = (f"DROPPING UNSAVED DATA of scan {scan.key} (#{scan.number} {scan.name}): "
                   f"{what}; streams {', '.join(scan.data_keys) or '-'}; "
                   "no writer has saved it yet, Redis is full")
        log.error(message)
        self.counters.last_drop = message


def run(client: redis.Redis, settings: TrackerSettings, stop: threading.Event,
        tracker: MemoryTracker | None = None, *, setup: Callable[[], object] | None = None,
        report: Callable[[Exception | None], None] | None = None,
        backoff: Backoff | None = None) -> None:
    """Run monitoring cycles until ``stop`` is set; Redis errors are retried (after the
    delays of ``backoff``: pass ``Backoff(url)`` for a Sentinel URL).

    The start-up (``setup``, e.g. initialising the database, then
    :meth:`MemoryTracker.log_init`) is retried like a cycle, so Redis may start later.
    ``report`` is told how each attempt went: None after a cycle, else the Redis error.
    """
    tracker = tracker or MemoryTracker(client, settings)
    report = report or (lambda error: None)
    started = False
    backoff = backoff or Backoff(None)
    while not stop.is_set():
        try:
            if not started:
                if setup is not None:
                    setup()
                tracker.log_init()
                started = True
            used = tracker.cycle()
            report(None)
            backoff.reset()
            stop.wait(tracker.period(used))
        # types-redis 4.6 (required by redis-om) shadows redis-py's types, lacks this error
        except redis.OutOfMemoryError as exc:  # type: ignore[attr-defined]
            log.critical("Redis is out of memory, monitoring routine can't run, retry...")
            report(exc)
            stop.wait(0.5)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            delay = backoff.next()
            log.warning("Redis unreachable (%s), retrying in %.1f s", exc, delay)
            report(exc)
            stop.wait(delay)
        except Exception as exc:  # e.g. something hostile in Redis: never die once started
            if not started:
                raise
            delay = backoff.next()
            log.exception("Monitoring cycle failed, retrying in %.1f s", delay)
            report(exc)
            stop.wait(delay)
