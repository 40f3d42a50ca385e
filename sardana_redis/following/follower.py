"""Following new scans for a writer service: one follower shared by every writer.

:class:`ScanFollower` waits for new scans with blissdata's ``get_next_scan``,
keeps its place durably in a :class:`~sardana_redis.following.ledger.WriterLedger`,
filters scans by session/beamline, claims each scan (exactly one instance
writes it) and hands it to a :class:`ScanHandler` in a thread of its own, so scans
running at the same time are written at the same time, and a scan that waits (for
data, for a file) never holds up another: there is no fixed pool of workers, only a
cap on the scans written at once (``max_scans``, far above what a beamline runs;
beyond it scans wait in the pending set, oldest first). Scans the capped scan
history no longer names (created while the writer was down) are found with
blissdata's search on every (re)connection. Each instance says it is alive, with its
lag, failures and what it waits for, in the ledger (``alive``) every second. Leases are renewed
while a scan is written; an instance that loses one stops writing that scan.
Redis going away is retried with backoff, without losing the scan in
progress (the handler resumes it from the ledger's progress); a scan Redis no
longer holds when it is back (restarted without persistence) is given up, with
an ERROR, without writing anything more. A full disk is retried with backoff
too: the scan is not marked done (the memory tracker keeps it in Redis) until
its files are written whole.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from blissdata.exceptions import NoScanAvailable, ScanLoadError, ScanNotFoundError

from sardana_redis.datastore import open_data_store
from sardana_redis.following.ledger import DoneRecord, WriterLedger, timetag_score
from sardana_redis.memory_tracker import scan_keys
from sardana_redis.published_scan import PublishedScan
from sardana_redis.redis_connection import Backoff, NotReplicated, ReplicaWait, redis_client
from sardana_redis.redis_url import redact_redis_url, with_socket_timeouts
from sardana_redis.scan_model import ScanRejected

log = logging.getLogger(__name__)

#: Errors that mean "Redis cannot serve us right now" (unreachable, or full and refusing
#: writes until the memory tracker frees memory): retried with backoff, never a failed scan.
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, ConnectionError,
              redis.exceptions.OutOfMemoryError)  # type: ignore[attr-defined]  # see below
#: Seconds between two records of the points on disk (what the memory tracker may free).
PROGRESS_PERIOD = 1.0
#: Seconds a scan stays claimed by an instance that stopped renewing it (default).
LEASE = 10.0
#: errno values meaning "this disk takes no more now": the scan is retried, not failed.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: Longest wait between two tries of a scan whose disk is full, seconds.
MAX_DISK_RETRY = 30.0
#: Default cap on the scans one instance writes at once (one thread each).
MAX_SCANS = 512
#: Longest time a scan handed over holds up the next one before queuing for its files.
QUEUE_WAIT = 2.0
#: Scans, at most, whose waits an instance publishes in its heartbeat.
BLOCKED_SHOWN = 50


def redis_problem(exc: BaseException) -> str:
    """What a :data:`REDIS_DOWN` error means, for the log: a full Redis is not a lost one."""
    # types-redis 4.6 (required by redis-om, so by blissdata) shadows redis-py's own types
    # and lacks OutOfMemoryError (redis-py >= 4.6 has it)
    if isinstance(exc, NotReplicated):
        return f"Redis replicas not acknowledging ({exc})"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):  # type: ignore[attr-defined]
        return (f"Redis is full (maxmemory reached) and refuses writes ({exc}); is the "
                "memory tracker running?")
    return f"Redis unreachable ({exc})"


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or an exceeded quota (h5py
    raises HDF5's errors with their errno)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in DISK_FULL:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


@dataclass
class ScanJob:
    """One scan handed to a handler."""

    store: Any  #: the blissdata DataStore
    scan: Any  #: the blissdata Scan (read-only)
    ledger: WriterLedger
    stop: threading.Event = field(default_factory=threading.Event)  #: set: stop writing now
    files: tuple[str, ...] = ()  #: the files the handler writes, once it knows them
    rows_written: int = 0
    points_seen: int = 0
    #: what the handler waits for now, e.g. "waiting for FILE: held open by another program"
    waiting: str = ""
    #: set once the handler has queued for its files (or ended): the next scan may start
    queued: threading.Event = field(default_factory=threading.Event)


class ScanHandler(Protocol):
    """Writes one scan; returns its :class:`DoneRecord`, or None when ``job.stop``
    interrupted it."""

    def handle(self, job: ScanJob) -> DoneRecord | None: ...


@dataclass
class FollowerStatus:
    """What a follower has done, for status displays and Tango attributes."""

    running: bool = False
    connecting: bool = False  #: started, Redis not answered yet
    healthy: bool = True
    message: str = "not started"
    scans_written: int = 0
    scans_failed: int = 0
    last_scan: str = ""
    last_files: tuple[str, ...] = ()
    active: dict[str, ScanJob] = field(default_factory=dict)  #: change with track/untrack
    stalled: dict[str, str] = field(default_factory=dict)  #: scans that cannot be written now: why
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # the follower's threads (one per scan) change the status through these, under the lock

    def track(self, key: str, job: ScanJob) -> None:
        with self._lock:
            self.active[key] = job

    def untrack(self, key: str) -> None:
        with self._lock:
            self.active.pop(key, None)
            self.stalled.pop(key, None)

    def stall(self, key: str, why: str) -> None:
        with self._lock:
            self.stalled[key] = why

    def count(self, key: str, record: DoneRecord) -> None:
        """A scan done: written (the last one, its files) or failed."""
        with self._lock:
            if record.status == "written":
                self.scans_written += 1
                self.last_scan, self.last_files = key, record.files
            elif record.status == "failed":
                self.scans_failed += 1

    def jobs(self) -> list[tuple[str, ScanJob]]:
        """The scans being written (a copy)."""
        with self._lock:
            return list(self.active.items())

    @property
    def blocked(self) -> dict[str, str]:
        """The scans that cannot be written now, and why: stalled (disk full), or waiting
        for a file another program holds."""
        with self._lock:
            blocked = dict(self.stalled)
        for key, job in self.jobs():
            if job.waiting:
                blocked.setdefault(key, job.waiting)
        return blocked

    @property
    def lag_points(self) -> int:
        """Points published but not yet written, over the scans being written."""
        return sum(max(job.points_seen - job.rows_written, 0) for _, job in self.jobs())


#: blissdata's stream of new scans: one entry ``{key: <scan key>}`` per scan.
SCAN_HISTORY = "_SCAN_HISTORY_"


def skip_history_entry(client: redis.Redis, since: str) -> str:
    """The id of the scan history entry after ``since``, which names no scan (logged)."""
    entry_id, fields = client.xrange(SCAN_HISTORY, min=f"({since}", count=1)[0]
    log.error("Scan history entry %s names no scan, skipped: %r", entry_id.decode(), fields)
    return entry_id.decode()


class ScanFollower:
    """Follows the scans of one Redis for one writer (see the module docstring)."""

    def __init__(
        self,
        url: str,
        name: str,
        handler: ScanHandler,
        *,
        sessions: Iterable[str] = (),
        beamlines: Iterable[str] = (),
        next_scan_timeout: float = 0.5,
        lease: float = LEASE,
        max_scans: int = MAX_SCANS,
    ) -> None:
        # reads block up to next_scan_timeout: the socket timeout must be longer
        self.url = with_socket_timeouts(url, connect=5, read=next_scan_timeout + 30)
        self.name = name
        self.handler = handler
        self.sessions = set(sessions)
        self.beamlines = set(beamlines)
        self.next_scan_timeout = next_scan_timeout
        self.lease = lease
        if max_scans < 1:
            raise ValueError("--max-scans must be at least 1")
        self.max_scans = max_scans
        self.status = FollowerStatus()
        self._stopping = threading.Event()
        self._workers: dict[str, threading.Thread] = {}
        self._backlog = False  #: scans were left pending at the cap
        self._threads: list[threading.Thread] = []
        self._store: Any = None
        self._ledger: WriterLedger | None = None
        self._lock = threading.Lock()
        self._ledger_memory: dict[str, dict[str, Any]] = {}

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start following in background threads."""
        self._stopping.clear()
        self.status.running = True
        self.status.connecting = True
        self.status.healthy = False
        self.status.message = f"connecting to {redact_redis_url(self.url)}"
        for target in (self._follow, self._heartbeat):
            thread = threading.Thread(target=target, name=f"{self.name}-{target.__name__[1:]}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following; scans being written are left to be resumed (never half-marked)."""
        self._stopping.set()
        for _, job in self.status.jobs():
            job.stop.set()
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, *self._workers.values()]:
            thread.join(max(deadline - time.monotonic(), 0.1))
        self._beat(stopped=True)
        self._threads = []
        self.status.running = False
        self.status.message = "stopped"

    def is_alive(self) -> bool:
        """True while the follower's threads run (a dead thread is a fault)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def wait(self) -> None:
        """Block until :meth:`stop` is called (for command-line use)."""
        while not self._stopping.wait(0.5):
            if self._threads and not self.is_alive():
                raise RuntimeError("scan follower thread died, see the log")

    # --- following new scans ---------------------------------------------

    def _connect(self) -> tuple[Any, WriterLedger]:
        store = open_data_store(self.url)
        ledger = WriterLedger(redis_client(self.url), self.name, self.lease,
                              replicas=ReplicaWait.of(self.url),
                              memory=self._ledger_memory)
        ledger.forget_silent()
        return store, ledger

    def _follow(self) -> None:
        backoff = Backoff(self.url)
        since = None
        while not self._stopping.is_set():
            try:
                log.info("Connecting to DB")
                store, ledger = self._connect()
                with self._lock:
                    self._store, self._ledger = store, ledger
                since = self._start_cursor(store, ledger, since)
                self._catch_up(ledger, since)
                self._set_healthy(f"following {redact_redis_url(self.url)}")
                log.info("Waiting for scan on %s (writer %r)", redact_redis_url(self.url),
                         self.name)
                self._resume_pending(ledger)
                last_janitor = time.monotonic()
                backoff.reset()
                while not self._stopping.is_set():
                    try:
                        timetag, key = store.get_next_scan(since=since,
                                                           timeout=self.next_scan_timeout)
                    except NoScanAvailable:
                        pass
                    except (KeyError, UnicodeDecodeError):  # an entry blissdata cannot read
                        since = skip_history_entry(ledger.client, since)
                        ledger.set_cursor(since)
                    else:
                        ledger.record_seen(key, timetag)
                        since = timetag
                        self._consider(ledger, key)
                    if time.monotonic() - last_janitor > self.lease / 2:
                        if self._history_gap(ledger, since):
                            self._catch_up(ledger, since)
                        self._resume_pending(ledger)
                        last_janitor = time.monotonic()
                    elif self._backlog and len(self.status.active) < self.max_scans:
                        self._resume_pending(ledger)
            except redis.AuthenticationError as exc:  # wrong user or password in the URL
                self._set_unhealthy(f"{redact_redis_url(self.url)} refused the login ({exc}), "
                                    "retrying")
            except REDIS_DOWN as exc:
                self._set_unhealthy(f"{redis_problem(exc)}, retrying")
            except Exception as exc:  # e.g. a Redis without the blissdata modules
                log.exception("Scan following failed")
                self._set_unhealthy(f"error: {exc}, retrying")
            self._stopping.wait(backoff.next())

    @staticmethod
    def _start_cursor(store: Any, ledger: WriterLedger, followed: str | None) -> str:
        """Where to follow from: the ledger's cursor; on a first start, from now on; when
        the ledger vanished while this follower was following (Redis restarted without
        its data), from the start of the new history, so no scan since then is missed."""
        since = ledger.cursor()
        if since is not None:
            return since
        if followed is None:
            since = store.get_last_scan_timetag()
        else:
            log.warning("The ledger of writer %r is gone from Redis (restarted without "
                        "persistence, or flushed): following every scan Redis holds now",
                        ledger.name)
            since = "0-0"
        ledger.set_cursor(since)
        return since

    def _set_healthy(self, message: str) -> None:
        self.status.healthy, self.status.message = True, message
        self.status.connecting = False

    def _set_unhealthy(self, message: str) -> None:
        if self.status.healthy or self.status.message != message:
            log.warning(message)  # once per distinct problem
        self.status.healthy, self.status.message = False, message
        self.status.connecting = False

    @staticmethod
    def _history_gap(ledger: WriterLedger, since: str) -> bool:
        """True when scans created after ``since`` may have left the capped history."""
        first = scan_keys.history_start(ledger.client)
        return first is not None and timetag_score(first) > timetag_score(since)

    def _catch_up(self, ledger: WriterLedger, since: str) -> None:
        """Make pending every scan Redis holds that was created after ``since`` and this
        writer has neither done nor pending: blissdata's scan history keeps only the last
        2048 scans, so after a long downtime (or a burst) the older ones are found only by
        blissdata's search. They are written oldest first, as the others."""
        try:
            found = [(key, ms) for key, ms in scan_keys.search_scans(ledger.client)
                     if ms > timetag_score(since)]
        except redis.ResponseError as exc:  # e.g. an ACL user without FT.SEARCH
            log.warning("Cannot search the scans in Redis (%s): scans no longer in the scan "
                        "history are not written (see users.conf.example)", exc)
            return
        if not found:
            return
        new = ledger.add_unseen(found)
        if new:
            log.info("%d scan(s) created since %s found by search, not in the scan history "
                     "any more: written too", new, since)

    def _resume_pending(self, ledger: WriterLedger) -> None:
        """Take the pending scans nobody holds (after a restart, an instance's death, or
        scans left at the cap), oldest first, up to the cap."""
        self._backlog = False
        for key in ledger.pending():
            if len(self.status.active) >= self.max_scans:
                self._backlog = True
                break
            if key not in self.status.active:
                self._consider(ledger, key)

    def _consider(self, ledger: WriterLedger, key: str) -> None:
        if key in self.status.active or ledger.is_done(key):
            return
        if len(self.status.active) >= self.max_scans:
            if not self._backlog:
                log.warning("%d scans being written (--max-scans): scan %s and the next ones "
                            "wait, pending, until one ends", len(self.status.active), key)
            self._backlog = True
            return
        try:
            scan = self._store.load_scan(key)
            reason = self._filtered_out(scan)
        except REDIS_DOWN:
            raise
        except ScanLoadError as exc:
            log.warning("Scan %s cannot be loaded, skipped: %s", key, exc)
            ledger.mark_done(key, DoneRecord("skipped", f"scan no longer loadable: {exc}"))
            return
        except Exception as exc:  # a malformed scan must not stop the service
            log.error("Scan %s cannot be read: %s: %s", key, type(exc).__name__, exc)
            record = DoneRecord("failed", f"cannot read the scan: {type(exc).__name__}: {exc}")
            ledger.mark_done(key, record)
            self.status.count(key, record)
            return
        if reason:
            ledger.mark_done(key, DoneRecord("skipped", reason))
            return
        if not ledger.claim(key):
            return
        job = ScanJob(self._store, scan, ledger)
        info = scan.info if isinstance(scan.info, dict) else {}
        lost = ledger.carry_over(key, info.get("republished_from"))
        if lost:
            log.info("Scan %s is scan %s published again after Redis lost it: going on "
                     "after what its files hold", key, lost)
        log.info("Processing scan %s", key)
        self.status.track(key, job)
        thread = threading.Thread(target=self._work, args=(key, job), daemon=True,
                                  name=f"{self.name}-scan-{getattr(scan, 'number', '?')}")
        self._workers[key] = thread
        thread.start()
        # scans into one file are written in creation order: the next scan starts once this
        # one has queued for its files (bounded: a scan slow to prepare holds no one up long)
        job.queued.wait(QUEUE_WAIT)

    def _filtered_out(self, scan: Any) -> str:
        if self.sessions and scan.session not in self.sessions:
            return f"session {scan.session!r} not followed"
        if self.beamlines:
            beamline = PublishedScan.parse(scan.info).beamline
            if beamline not in self.beamlines:
                return f"beamline {beamline!r} not followed"
        return ""

    # --- writing one scan --------------------------------------------------

    def _work(self, key: str, job: ScanJob) -> None:
        redis_delay = Backoff(self.url)
        disk_delay = 0.5
        try:
            while not job.stop.is_set():
                try:
                    record = self.handler.handle(job)
                except REDIS_DOWN as exc:
                    delay = redis_delay.next()
                    log.warning("Scan %s: %s, resuming in %.1f s", key, redis_problem(exc), delay)
                    if job.stop.wait(delay) or not self._still_in_redis(key, job):
                        break
                    continue
                except ScanRejected as exc:  # hostile or absurd: never retried
                    log.error("Scan %s #%s refused: %s", key, getattr(job.scan, "number", "?"), exc)
                    record = DoneRecord("failed", f"refused: {exc}", points=job.rows_written)
                except Exception as exc:
                    if is_disk_full(exc):
                        disk_delay = min(disk_delay * 2, MAX_DISK_RETRY)
                        self._disk_full(key, job, exc, disk_delay)
                        job.stop.wait(disk_delay)
                        continue
                    log.error("Scan %s #%s failed: %s: %s", key, getattr(job.scan, "number", "?"),
                              type(exc).__name__, exc,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    record = DoneRecord("failed", str(exc), points=job.rows_written)
                if record is None:  # interrupted: left for a resume
                    break
                try:
                    job.ledger.mark_done(key, record)
                except REDIS_DOWN as exc:  # handled again: a whole file is left as it is
                    delay = redis_delay.next()
                    log.warning("Scan %s: %s, marking it done in %.1f s", key,
                                redis_problem(exc), delay)
                    if job.stop.wait(delay) or not self._still_in_redis(key, job):
                        break
                    continue
                self.status.count(key, record)
                break
        finally:
            self.status.untrack(key)
            self._workers.pop(key, None)
            if job.stop.is_set():
                with contextlib.suppress(*REDIS_DOWN):  # else the lease expires by itself
                    job.ledger.release(key)

    def _disk_full(self, key: str, job: ScanJob, exc: BaseException, retry: float) -> None:
        """Report a scan that cannot be written for lack of space (it stays pending)."""
        files = ", ".join(job.files) or "its files"
        message = (f"cannot write {files}: {exc}".splitlines()[0] +
                   f"; not marked done (kept in Redis), retrying in {retry:.0f} s")
        log.error("Scan %s #%s: %s", key, getattr(job.scan, "number", "?"), message)
        self.status.stall(key, message)

    def _still_in_redis(self, key: str, job: ScanJob) -> bool:
        """After an outage: reload the scan (waiting while Redis is still down); False,
        with an ERROR and nothing written to Redis, when Redis no longer holds it."""
        while True:
            try:
                job.scan = job.store.load_scan(key)
                return True
            except ScanNotFoundError:
                break
            except REDIS_DOWN:
                if job.stop.wait(1.0):
                    return False
        self.status.count(key, DoneRecord("failed", "gone from Redis"))
        log.error("Scan %s #%s is gone from Redis (restarted without its data, or deleted): "
                  "%s keep the %d points written before; the rest of the scan is lost",
                  key, getattr(job.scan, "number", "?"), ", ".join(job.files) or "its files",
                  job.rows_written)
        return False

    def _heartbeat(self) -> None:
        """Record the points on disk of the scans being written, for the memory tracker
        (every ``PROGRESS_PERIOD``), and renew their leases (every third of the lease; stop
        those whose lease was lost)."""
        renewed = time.monotonic()
        while not self._stopping.wait(min(PROGRESS_PERIOD, self.lease / 3)):
            self._beat()
            active = self.status.jobs()
            by_ledger: dict[int, tuple[WriterLedger, dict[str, int]]] = {}
            for key, job in active:  # a job starting again says nothing until it knows where it is
                if job.rows_written:
                    _, written = by_ledger.setdefault(id(job.ledger), (job.ledger, {}))
                    written[key] = job.rows_written
            for ledger, written in by_ledger.values():  # each job's progress through its own ledger
                try:
                    ledger.set_points(written)
                except REDIS_DOWN:
                    pass
            if time.monotonic() - renewed < self.lease / 3:
                continue
            renewed = time.monotonic()
            for key, job in active:
                try:
                    if not job.ledger.renew(key) and (key, job) in self.status.jobs():
                        # (a job that just ended released its lease: nothing lost)
                        log.warning("Scan %s: lease lost to another instance, stopping", key)
                        job.stop.set()
                except REDIS_DOWN:
                    pass  # the lease may expire; a takeover then resumes the file
                except Exception:
                    log.exception("Scan %s: cannot renew its lease", key)

    def _beat(self, stopped: bool = False) -> None:
        """Say in the ledger that this instance is alive, with its lag, failures and what it
        waits for (``sardana-redis writers``; the memory tracker's ``--writer-grace``)."""
        ledger, status = self._ledger, self.status
        if ledger is None:
            return
        blocked = dict(list(status.blocked.items())[:BLOCKED_SHOWN])
        try:
            ledger.beat({"host": socket.gethostname(), "pid": os.getpid(), "stopped": stopped,
                         "healthy": status.healthy, "message": status.message,
                         "active": len(status.active), "lag_points": status.lag_points,
                         "scans_written": status.scans_written,
                         "scans_failed": status.scans_failed, "blocked": blocked})
        except REDIS_DOWN:
            pass
        except redis.RedisError as exc:  # e.g. an ACL without the alive key
            log.debug("cannot record the heartbeat: %s", exc)
