"""blissdata's storage in Redis, read and changed in bulk for the memory tracker.

blissdata's public API works one scan at a time (a round trip or more each);
a tracker watching thousands of scans needs pipelines. This module is the one
place that knows blissdata's Redis layout (protocol version 1, as blissdata's
own ``memory_tracker`` uses it):

* ``_SCAN_HISTORY_``: a stream with one entry ``{key: <scan key>}`` per new scan;
* ``esrf:scan:<pk>``: the scan's JSON document, whose ``state_stream.pk`` and
  ``data_streams.<name>.pk`` name the streams ``esrf:stream:<pk>``;
* a state stream entry ``{state: 0..4}`` per state (CLOSED = 4);
* data stream entries have ids ``<first point index>-1`` and a ``len`` field;
  a sealed stream ends with the id ``2**64-1-2**64-1`` (server function ``seal_stream``);
* and ours: the publisher's heartbeat (:mod:`sardana_redis.publishing.heartbeat`).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from blissdata.redis_engine.scan import ScanState

from sardana_redis.publishing.h5maps import ended_h5maps
from sardana_redis.publishing.heartbeat import heartbeat_key
from sardana_redis.scan_model import EndReason, ScanEnd

log = logging.getLogger(__name__)

SCAN_HISTORY = "_SCAN_HISTORY_"
SEAL_ID = f"{2**64 - 1}-{2**64 - 1}"


@dataclass
class ScanKeys:
    """The Redis keys of one scan, and what the tracker knows of it."""

    key: str
    created_ms: int  #: creation time (ms since epoch, from the history stream id)
    state_key: str
    data_keys: dict[str, str]  #: stream name -> Redis key
    name: str = ""
    number: int = 0
    state: int = ScanState.CREATED
    last_ids: dict[str, bytes] = field(default_factory=dict)
    #: seconds since epoch (first seen, or last state/data/heartbeat change)
    last_activity: float = 0.0
    heartbeat: bytes | None = None  #: last heartbeat value seen (None: its publisher sends none)
    expiring: bool = False  #: an expiration was set

    @property
    def closed(self) -> bool:
        return self.state >= ScanState.CLOSED

    @property
    def all_keys(self) -> list[str]:
        return [self.key, self.state_key, *self.data_keys.values()]


def stream_prefix(scan_key: str) -> str:
    """``esrf:scan:<pk>`` -> ``esrf:stream:``."""
    return scan_key.split(":", 1)[0] + ":stream:"


def new_scans(client: redis.Redis, since: str,
              count: int = 1000) -> tuple[str, list[tuple[str, int]]]:
    """Scans created after ``since``: (new cursor, [(scan key, creation ms)])."""
    entries = client.xrange(SCAN_HISTORY, min=f"({since}" if since != "0-0" else "-", count=count)
    out = []
    for entry_id, fields in entries:
        since = entry_id.decode()
        key = fields.get(b"key", b"").decode(errors="replace")
        if not key.startswith("esrf:scan:"):
            log.warning("Scan history entry %s names no scan, ignored: %r", since, fields)
            continue
        out.append((key, int(since.split("-")[0])))
    return since, out


def load_keys(client: redis.Redis, scans: list[tuple[str, int]]) -> list[ScanKeys]:
    """The keys of many scans in one pipeline (scans already gone are left out)."""
    pipe = client.pipeline(transaction=False)
    for key, _ in scans:
        pipe.execute_command("JSON.GET", key, "$.state_stream.pk", "$.data_streams", "$.id.name",
                             "$.id.number")
    out = []
    for (key, created), raw in zip(scans, pipe.execute(raise_on_error=False), strict=True):
        if raw is None or isinstance(raw, Exception):
            continue
        try:
            out.append(_scan_keys(key, created, json.loads(raw)))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            log.warning("Scan %s has a malformed scan document, not tracked: %s: %s",
                        key, type(exc).__name__, exc)
    return out


def _scan_keys(key: str, created: int, doc: dict) -> ScanKeys:
    """A scan's keys from the paths of its document (untrusted: any error is raised)."""
    prefix = stream_prefix(key)
    state_pk = doc["$.state_stream.pk"][0]
    data = doc["$.data_streams"][0] or {}
    if not isinstance(state_pk, str) or \
            not all(isinstance(m.get("pk"), str) for m in data.values()):
        raise TypeError("stream keys are not strings")
    number = (doc["$.id.number"] or [0])[0] or 0
    return ScanKeys(
        key=key, created_ms=created, state_key=prefix + state_pk,
        data_keys={name: prefix + model["pk"] for name, model in data.items()},
        name=str((doc["$.id.name"] or [""])[0]), number=number if isinstance(number, int) else 0,
    )


def refresh_states(client: redis.Redis, scans: Iterable[ScanKeys]) -> None:
    """Read the last state, last data entry ids and heartbeat of scans, in one pipeline.

    A heartbeat once seen is kept when its key goes (the publisher stopped beating)."""
    scans = list(scans)
    pipe = client.pipeline(transaction=False)
    for scan in scans:
        pipe.get(heartbeat_key(scan.key))
        pipe.xrevrange(scan.state_key, count=1)
        for key in scan.data_keys.values():
            pipe.xrevrange(key, count=1)
    replies = iter(pipe.execute())
    for scan in scans:
        scan.heartbeat = next(replies) or scan.heartbeat
        state = next(replies)
        if state:
            scan.state = _state(scan, state[0][1])
        for name in scan.data_keys:
            last = next(replies)
            if last:
                scan.last_ids[name] = last[0][0]


def _state(scan: ScanKeys, fields: dict) -> int:
    """The state an entry of a scan's state stream gives (untrusted: garbage keeps the old one)."""
    try:
        return int(fields[b"state"])
    except (KeyError, ValueError):
        log.warning("Scan %s: malformed state entry %r ignored", scan.key, fields)
        return scan.state


def existing(client: redis.Redis, scans: list[ScanKeys]) -> list[bool]:
    """Whether each scan's JSON document still exists (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for scan in scans:
        pipe.exists(scan.key)
    return [bool(n) for n in pipe.execute()]


def expire(client: redis.Redis, scans: list[ScanKeys], ttl: int) -> None:
    """Set (or shorten) the expiration of every key of these scans."""
    pipe = client.pipeline(transaction=False)
    for scan in scans:
        for key in scan.all_keys:
            pipe.expire(key, ttl, lt=True)  # LT: a key without TTL counts as infinite
    pipe.execute()


def delete(client: redis.Redis, scans: list[ScanKeys]) -> None:
    """Remove these scans now (DEL, not UNLINK: the memory reading that follows must see it)."""
    keys = [key for scan in scans for key in scan.all_keys]
    if keys:
        client.delete(*keys)


def close_as_failed(client: redis.Redis, scan: ScanKeys, reason: str) -> None:
    """Close an abandoned scan: seal its streams, record why and when, set it CLOSED.

    Readers and writers following it then see its end, as for any closed scan; its NeXus
    layouts (``h5maps``, if any) get the end time and reason, as the publisher would do.
    """
    end = ScanEnd(datetime.datetime.now().astimezone().isoformat(), EndReason.FAILURE)
    raw = client.execute_command("JSON.GET", scan.key, "$.info.h5maps")
    h5maps = (json.loads(raw) or [None])[0] if raw else None
    for key in scan.data_keys.values():
        try:
            # types-redis 4.6 (required by redis-om) shadows redis-py's types, lacks FCALL
            client.fcall("seal_stream", 1, key)  # type: ignore[attr-defined]
        except redis.ResponseError as exc:
            if "already sealed" not in str(exc):
                raise
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("JSON.SET", scan.key, "$.info.end_reason", json.dumps(end.reason.value))
    pipe.execute_command("JSON.SET", scan.key, "$.info.end_time", json.dumps(end.end_time))
    pipe.execute_command("JSON.SET", scan.key, "$.info.publication_error", json.dumps(reason))
    if isinstance(h5maps, dict) and h5maps:
        pipe.execute_command("JSON.SET", scan.key, "$.info.h5maps",
                             json.dumps(ended_h5maps(h5maps, end)))
    pipe.xadd(scan.state_key, {"state": int(ScanState.CLOSED)})
    pipe.execute()
    scan.state = ScanState.CLOSED


def trim_before(client: redis.Redis, scan: ScanKeys, points: int) -> int:
    """Drop the entries of every data stream that hold only points before ``points``.

    Returns the number of entries removed.
    """
    removed = 0
    for key in scan.data_keys.values():
        # the entry holding point `points` starts at or before it: keep from that one
        keep = client.xrevrange(key, max=f"{points}-1", count=1)
        if keep:
            removed += client.xtrim(key, minid=keep[0][0].decode(), approximate=False)
    return removed


def history_start(client: redis.Redis) -> str | None:
    """The id of the oldest entry of the scan history (None: empty). The history is
    capped (2048 entries): scans older than this one are found only by a search."""
    first = client.xrange(SCAN_HISTORY, count=1)
    return first[0][0].decode() if first else None


def search_scans(client: redis.Redis, page: int = 1000) -> list[tuple[str, int]]:
    """Every scan in Redis, found with blissdata's search index (not the capped history),
    oldest first: [(scan key, creation ms)]. The creation time is the first id of its
    state stream (Redis' clock, as the history's ids); scans without one are left out."""
    keys: list[str] = []
    while True:
        reply = client.execute_command("FT.SEARCH", "esrf:scan:index", "*", "NOCONTENT",
                                       "LIMIT", len(keys), page)
        keys += [k.decode() if isinstance(k, bytes) else str(k) for k in reply[1:]]
        if len(reply) <= 1 or len(keys) >= int(reply[0]):
            break
    out = []
    for chunk in range(0, len(keys), page):
        part = keys[chunk:chunk + page]
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.execute_command("JSON.GET", key, "$.state_stream.pk")
        state_keys = []
        for key, raw in zip(part, pipe.execute(raise_on_error=False), strict=True):
            try:
                state_keys.append((key, stream_prefix(key) + json.loads(raw)[0]))
            except (TypeError, ValueError, IndexError, AttributeError):
                continue  # gone meanwhile, or not a scan document
        pipe = client.pipeline(transaction=False)
        for _, state_key in state_keys:
            pipe.xrange(state_key, count=1)
        for (key, _), first in zip(state_keys, pipe.execute(raise_on_error=False), strict=True):
            if first and not isinstance(first, Exception):
                out.append((key, int(first[0][0].decode().split("-")[0])))
    return sorted(out, key=lambda item: item[1])
