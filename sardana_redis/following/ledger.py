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
  a takeover.

Keys: ``sardana_redis:writer:<name>:{cursor,pending,done,points,progress,claim:<scan>,file:<path>}``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import redis

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


#: Scans whose progress a writer process remembers (for scans Redis loses).
MEMORY_SCANS = 1000


class WriterLedger:
    """The durable state of one writer name (see the module docstring)."""

    def __init__(self, client: redis.Redis, name: str, lease: float = 10.0,
                 memory: dict[str, dict[str, Any]] | None = None) -> None:
        self.client = client
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

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

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

    def pending(self) -> list[str]:
        """Scans seen and not finished, oldest first."""
        return [k.decode() for k in self.client.zrange(self._key("pending"), 0, -1)]

    # --- claims -----------------------------------------------------------

    def claim(self, scan_key: str) -> bool:
        """Try to become the instance writing ``scan_key``."""
        if self.is_done(scan_key):
            return False
        return bool(self.client.set(self._key("claim", scan_key), self.instance,
                                    nx=True, px=self.lease_ms))

    def renew(self, scan_key: str) -> bool:
        """Extend this instance's lease on ``scan_key``; False when it was lost."""
        return bool(self._renew(keys=[self._key("claim", scan_key)],
                                args=[self.instance, self.lease_ms]))

    def release(self, scan_key: str) -> None:
        self._release(keys=[self._key("claim", scan_key)], args=[self.instance])

    # --- file locks -----------------------------------------------------------

    def lock_file(self, path: str, scan_key: str) -> bool:
        """Make ``scan_key`` the owner of ``path`` (True if it is, now or already)."""
        key = self._key("file", path)
        if self.client.set(key, scan_key, nx=True):
            return True
        owner = self.client.get(key)
        return owner is not None and owner.decode() == scan_key

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
                          int(data.get("points", 0)), float(data.get("time", 0.0)))

    def mark_done(self, scan_key: str, record: DoneRecord) -> None:
        """Record the outcome, forget the scan's progress and pending entry, release it."""
        payload: dict[str, Any] = {"status": record.status, "detail": record.detail,
                                   "files": list(record.files), "points": record.points,
                                   "time": record.time or time.time()}
        self._mark_done(keys=[self._key(k) for k in ("done", "pending", "progress", "points")],
                        args=[scan_key, json.dumps(payload)])
        self.memory.pop(scan_key, None)
        self.release(scan_key)
