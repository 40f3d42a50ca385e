"""What a writer service has done, kept durably in Redis beside the scans.

Every instance of one writer (same ``name``) shares one ledger, so that:

* a restarted service resumes where it stopped: the **cursor** is the last
  scan-creation timetag seen, and every scan seen but not finished is in
  the **pending** set (written before the cursor moves);
* each scan is written by exactly one instance: an instance **claims** a
  scan with a lease it renews while it works; when it dies the lease
  expires and another instance (or the restarted one) takes the scan over;
* a finished scan gets a **done** record (status, files, points), which is
  also what the memory tracker reads to know what is persisted;
* **points** records, while a scan is written, how many of its points are
  on disk (the memory tracker may trim those from Redis);
* **progress** records where a scan's block starts in each file, so a
  takeover can truncate a half-written block and write it again, never twice;
* **file locks** (one owner scan per file) keep two scans from interleaving
  in one file; a lock belongs to a scan, not to an instance, so it survives
  a takeover. A lock never outlives its scan: once its owner is done, or gone
  from Redis, with no instance holding its claim, the next scan takes it over;
* **alive** holds each instance's heartbeat (time, lag, scans failed, what it
  waits for): the memory tracker waits for a writer only while it is alive (plus
  a grace period), ``sardana-redis writers`` shows it.

With a Redis that has replicas (a Sentinel URL), the writes a file depends on (claims,
file locks, progress, done) are acknowledged by ``wait_replicas`` replicas (Redis'
``WAIT``) before the writer goes on (else it waits, as for a Redis away): a failover
cannot roll the ledger back behind the files.

Keys: ``sardana_redis:writer:<name>:`` followed by ``cursor``, ``pending``, ``done``, ``points``,
``progress``, ``alive``, ``claim:<scan>`` or ``file:<path>``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from sardana_redis.redis_connection import ReplicaWait, ensure_replicated

log = logging.getLogger(__name__)

KEY_PREFIX = "sardana_redis:writer"

# The writes that let the memory tracker free memory (progress, leases, outcomes) run
# as scripts allowed while Redis is above maxmemory (Redis >= 7): a full Redis must not
# stop the writers from saying what they saved.
_RENEW = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_SET_POINTS = """#!lua flags=allow-oom
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""
# Take a file lock when free, or over from a stale owner (checked by the caller).
_TAKE_FILE = """#!lua flags=allow-oom
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] or owner == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
_MARK_DONE = """#!lua flags=allow-oom
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""


def timetag_score(timetag: str) -> float:
    """A Redis stream id ``ms-seq`` as a sortable number."""
    ms, _, seq = timetag.partition("-")
    return int(ms) + int(seq or 0) / 1e6


@dataclass(frozen=True)
class DoneRecord:
    """How a writer finished a scan."""

    status: str  #: ``written``, ``failed`` or ``skipped``
    detail: str = ""
    files: tuple[str, ...] = ()
    points: int = 0
    time: float = 0.0
    #: each file's inode when the scan was done: a file moved away (or replaced) since then
    #: no longer holds the scan (``sardana-redis rewrite``)
    inodes: Mapping[str, int] = field(default_factory=dict)


def inodes(files: tuple[str, ...]) -> dict[str, int]:
    """The inode of each of ``files`` that exists."""
    out = {}
    for path in files:
        try:
            out[path] = os.stat(path).st_ino
        except OSError:
            continue
    return out


#: Scans whose progress a writer process remembers (for scans Redis loses).
MEMORY_SCANS = 1000
#: Seconds since its last heartbeat (one a second) after which an instance is not alive.
ALIVE_WITHIN = 10.0
#: Heartbeats of instances silent this long are forgotten when an instance starts.
FORGET_AFTER = 7 * 86400


class WriterLedger:
    """The durable state of one writer name (see the module docstring)."""

    def __init__(self, client: redis.Redis, name: str, lease: float = 10.0,
                 memory: dict[str, dict[str, Any]] | None = None,
                 replicas: ReplicaWait = ReplicaWait()) -> None:
        self.client = client
        self.replicas = replicas
        #: what this process recorded of each scan (progress, points), kept across ledgers:
        #: a scan Redis lost and its publisher published again goes on from there
        self.memory = memory if memory is not None else {}
        self.name = name
        self.lease_ms = int(lease * 1000)
        self.instance = f"{uuid.uuid4().hex[:12]}"
        self.prefix = f"{KEY_PREFIX}:{name}"
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._set_points = client.register_script(_SET_POINTS)
        self._mark_done = client.register_script(_MARK_DONE)
        self._take_file = client.register_script(_TAKE_FILE)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _replicated(self, what: str) -> None:
        """Wait until the replicas hold what was just written (``what`` it was): else
        :class:`~sardana_redis.redis_connection.NotReplicated`, which the writer handles as
        Redis unreachable (it waits, and goes on from the ledger the replicas hold)."""
        ensure_replicated(self.client, self.replicas, f"writer {self.name}'s {what}")

    # --- cursor and pending scans ------------------------------------------

    def cursor(self) -> str | None:
        """The last scan-creation timetag seen by any instance, or None."""
        value = self.client.get(self._key("cursor"))
        return value.decode() if value else None

    def set_cursor(self, timetag: str) -> None:
        self.client.set(self._key("cursor"), timetag)

    def record_seen(self, scan_key: str, timetag: str) -> None:
        """Add a new scan to the pending set, then move the cursor past it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self._key("pending"), {scan_key: timetag_score(timetag)}, nx=True)
        pipe.set(self._key("cursor"), timetag)
        pipe.execute()

    def add_unseen(self, scans: list[tuple[str, int]]) -> int:
        """Make pending those of ``scans`` ``[(key, creation ms)]`` neither done nor pending
        (found otherwise than in the scan history); returns how many."""
        if not scans:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key, _ in scans:
            pipe.hexists(self._key("done"), key)
            pipe.zscore(self._key("pending"), key)
        replies = pipe.execute()
        new: dict[str | bytes, float] = {key: float(ms) for (key, ms), done, pending in
               zip(scans, replies[0::2], replies[1::2], strict=True)
               if not done and pending is None}
        if new:
            self.client.zadd(self._key("pending"), new, nx=True)
        return len(new)

    def pending(self) -> list[str]:
        """Scans seen and not finished, oldest first."""
        return [k.decode() for k in self.client.zrange(self._key("pending"), 0, -1)]

    # --- claims -----------------------------------------------------------

    def claim(self, scan_key: str) -> bool:
        """Try to become the instance writing ``scan_key``."""
        if self.is_done(scan_key):
            return False
        claimed = bool(self.client.set(self._key("claim", scan_key), self.instance,
                                       nx=True, px=self.lease_ms))
        if claimed:
            self._replicated("claim")
        return claimed

    def renew(self, scan_key: str) -> bool:
        """Extend this instance's lease on ``scan_key``; False when it was lost."""
        return bool(self._renew(keys=[self._key("claim", scan_key)],
                                args=[self.instance, self.lease_ms]))

    def release(self, scan_key: str) -> None:
        self._release(keys=[self._key("claim", scan_key)], args=[self.instance])

    # --- file locks -----------------------------------------------------------

    def lock_file(self, path: str, scan_key: str) -> bool:
        """Make ``scan_key`` the owner of ``path`` (True if it is, now or already).

        A lock whose owner scan is over (done in this ledger, or gone from Redis while
        no instance holds its claim) is stale: it is taken over, with a WARNING."""
        if self._lock_file(path, scan_key):
            self._replicated("file lock")
            return True
        return False

    def _lock_file(self, path: str, scan_key: str) -> bool:
        key = self._key("file", path)
        if self.client.set(key, scan_key, nx=True):
            return True
        owner = self.client.get(key)
        if owner is None:  # released meanwhile
            return bool(self.client.set(key, scan_key, nx=True))
        if owner.decode() == scan_key:
            return True
        stale = self.stale_owner(owner.decode())
        if stale and self._take_file(keys=[key], args=[scan_key, owner.decode()]):
            log.warning("File %s: lock of scan %s (%s) taken over by scan %s",
                        path, owner.decode(), stale, scan_key)
            return True
        return False

    def stale_owner(self, scan_key: str) -> str:
        """Why a file lock held by ``scan_key`` is stale ("" while the scan may still
        write): no instance holds its claim, and it is done or gone from Redis."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self._key("claim", scan_key))
        pipe.hexists(self._key("done"), scan_key)
        pipe.exists(scan_key)
        claimed, done, exists = pipe.execute()
        if claimed:
            return ""
        if done:
            return "its scan is done"
        return "" if exists else "its scan is gone from Redis"

    def file_owner(self, path: str) -> str | None:
        owner = self.client.get(self._key("file", path))
        return owner.decode() if owner else None

    def unlock_file(self, path: str, scan_key: str) -> None:
        self._release(keys=[self._key("file", path)], args=[scan_key])

    # --- progress ---------------------------------------------------------------

    def progress(self, scan_key: str) -> dict[str, int]:
        """Where this scan's block starts in each of its files (byte offsets)."""
        raw = self.client.hget(self._key("progress"), scan_key)
        return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}

    def set_progress(self, scan_key: str, offsets: dict[str, int]) -> None:
        self.memory.setdefault(scan_key, {})["progress"] = dict(offsets)
        while len(self.memory) > MEMORY_SCANS:  # the oldest scans first
            del self.memory[next(iter(self.memory))]
        self.client.hset(self._key("progress"), scan_key, json.dumps(offsets))
        self._replicated("progress")

    def carry_over(self, scan_key: str, republished_from: Any) -> str | None:
        """A scan its publisher published again after Redis lost it (``republished_from``
        lists the keys it had): its progress and points go on from what this process
        recorded of the lost scan. Returns the lost key it goes on from, if any."""
        if not isinstance(republished_from, list) or self.progress(scan_key):
            return None
        for old in reversed(republished_from):
            kept = self.memory.get(old) if isinstance(old, str) else None
            if kept and kept.get("progress"):
                self.set_progress(scan_key, kept["progress"])
                if kept.get("points"):
                    self.set_points({scan_key: kept["points"]})
                return old
        return None

    # --- points persisted -----------------------------------------------------

    def points(self, scan_key: str) -> int:
        """The points of a scan this writer last recorded as on disk (0: none)."""
        return int(self.client.hget(self._key("points"), scan_key) or 0)

    def set_points(self, written: Mapping[str, int]) -> None:
        """Record how many points of each scan being written are on disk."""
        for key, points in written.items():
            self.memory.setdefault(key, {})["points"] = points
        if written:
            self._set_points(keys=[self._key("points")],
                             args=[v for item in written.items() for v in item])

    # --- done --------------------------------------------------------------------

    def is_done(self, scan_key: str) -> bool:
        return bool(self.client.hexists(self._key("done"), scan_key))

    def done(self, scan_key: str) -> DoneRecord | None:
        raw = self.client.hget(self._key("done"), scan_key)
        if raw is None:
            return None
        data = json.loads(raw)
        return DoneRecord(data["status"], data.get("detail", ""), tuple(data.get("files", ())),
                          int(data.get("points", 0)), float(data.get("time", 0.0)),
                          dict(data.get("inodes") or {}))

    def mark_done(self, scan_key: str, record: DoneRecord) -> None:
        """Record the outcome, forget the scan's progress and pending entry, release it."""
        payload: dict[str, Any] = {"status": record.status, "detail": record.detail,
                                   "files": list(record.files), "points": record.points,
                                   "time": record.time or time.time(),
                                   "inodes": record.inodes or inodes(record.files)}
        self._mark_done(keys=[self._key(k) for k in ("done", "pending", "progress", "points")],
                        args=[scan_key, json.dumps(payload)])
        self.memory.pop(scan_key, None)
        self.release(scan_key)
        self._replicated("done record")

    def request_rewrite(self, scan_key: str) -> DoneRecord | None:
        """Make a finished scan pending again, with no progress: a running instance writes
        it again (``sardana-redis rewrite``). Returns the done record it had, if any."""
        before = self.done(scan_key)
        pipe = self.client.pipeline(transaction=True)
        for part in ("done", "progress", "points"):
            pipe.hdel(self._key(part), scan_key)
        pipe.zadd(self._key("pending"), {scan_key: time.time() * 1000}, nx=True)
        pipe.execute()
        return before

    # --- liveness ------------------------------------------------------------------

    def forget_silent(self, after: float = FORGET_AFTER) -> None:
        """Forget the heartbeats of instances silent for ``after`` seconds (killed ones)."""
        now = time.time()
        old = [i for i, s in writer_instances(self.client, self.name).items()
               if now - float(s["time"]) > after]
        if old:
            self.client.hdel(self._key("alive"), *old)

    def beat(self, state: Mapping[str, Any]) -> None:
        """Record that this instance is alive now, with what it does (``state``)."""
        payload = {"time": time.time(), **state}
        self.client.hset(self._key("alive"), self.instance, json.dumps(payload))


def writer_names(client: redis.Redis) -> list[str]:
    """Every writer that ever followed this Redis (it has a cursor)."""
    return sorted({k.decode().split(":")[2]
                   for k in client.scan_iter(f"{KEY_PREFIX}:*:cursor", count=1000)})


def writer_instances(client: redis.Redis, name: str) -> dict[str, dict[str, Any]]:
    """The heartbeats of every instance of writer ``name`` (``{instance: state}``; the
    state has at least ``time``, seconds since the epoch). Malformed entries are left out."""
    out = {}
    for instance, raw in client.hgetall(f"{KEY_PREFIX}:{name}:alive").items():
        try:
            state = json.loads(raw)
            float(state["time"])
        except (ValueError, KeyError, TypeError):
            continue
        out[instance.decode(errors="replace")] = state
    return out


def last_beat(client: redis.Redis, name: str) -> float | None:
    """When an instance of writer ``name`` last said it was alive (None: never)."""
    times = [float(s["time"]) for s in writer_instances(client, name).values()]
    return max(times, default=None)
