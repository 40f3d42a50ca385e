"""Moving a :class:`Publication` and its batches into Redis, through blissdata.

The scan, its streams, its states and its sealing go through blissdata's own
``DataStore``/``Scan``/``Stream``. Data batches are encoded by blissdata's
encoders and written with blissdata's entry ids (``<first point index>-1``), but
sent by the publisher itself, in one MULTI/EXEC per round: so the publisher
knows exactly what Redis acknowledged (blissdata's sinks only report errors,
and die with their connection), a round refused for lack of memory leaves no
gap, and a batch sent twice is refused by Redis instead of being duplicated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from blissdata.redis_engine.scan import ScanState
from blissdata.redis_engine.store import DataStore

from sardana_redis.blissdata_private import load_scan_rw, stop_sink
from sardana_redis.datastore import init_db, is_initialized, open_data_store
from sardana_redis.publishing.publication import Batch, Publication
from sardana_redis.redis_connection import redis_client
from sardana_redis.redis_url import with_socket_timeouts

log = logging.getLogger(__name__)

#: blissdata's seal entry id (the stream is closed for writing after it).
SEAL_ID = b"18446744073709551615-18446744073709551615"


class RedisFull(redis.RedisError):
    """Redis refuses writes: it reached its maxmemory (the memory tracker frees space)."""


class ScanGone(LookupError):
    """The scan is not (or no longer) in Redis."""


class ScanClosed(RuntimeError):
    """The scan was closed in Redis by someone else (the memory tracker): no more data."""


def publisher_url(url: str | None) -> str:
    """``url`` normalised, with short socket timeouts: a dead Redis must not stall a publisher."""
    return with_socket_timeouts(url, connect=2, read=10)


_stores: dict[str, tuple[DataStore, redis.Redis]] = {}
_stores_lock = threading.Lock()


def data_store(url: str) -> tuple[DataStore, redis.Redis]:
    """One DataStore (and plain client) per URL and process (thread-safe, costly to build);
    the server is (re)initialised when it lost its blissdata set-up (restarted empty)."""
    with _stores_lock:
        cached = _stores.get(url)
        if cached is None:
            client = redis_client(url)  # with Sentinel, the DataStore shares its connections
            cached = _stores[url] = (open_data_store(url, client=client), client)
    store, client = cached
    if not is_initialized(client):
        init_db(url)
    return store, client


def is_oom(exc: BaseException) -> bool:
    """A Redis reply meaning "full" (maxmemory reached), wherever it comes from."""
    # types-redis 4.6 (required by redis-om) shadows redis-py's types, lacks this error
    return isinstance(exc, (RedisFull, redis.exceptions.OutOfMemoryError))  # type: ignore[attr-defined]


@dataclass
class LiveScan:
    """The blissdata scan being published: a scan object with write permission."""

    scan: Any
    streams: dict[str, Any]  #: blissdata writer streams, by name (their sinks stopped)
    reloaded: bool = False  #: loaded again after its publisher died (not created here)

    @property
    def key(self) -> str:
        return self.scan.key

    def release(self) -> None:
        """Stop every sink thread (nothing to send: the publisher sends itself)."""
        for stream in self.streams.values():
            stop_sink(stream)


def create(store: DataStore, publication: Publication, lost_keys: list[str] | None = None
           ) -> LiveScan:
    """Create, prepare and start the scan with its streams; ``lost_keys``: the keys it had
    in Redis before Redis lost it (``scan_info["republished_from"]``, for the writers)."""
    info = dict(publication.info)
    if lost_keys:
        info["republished_from"] = list(lost_keys)
    try:
        scan = store.create_scan(publication.identity, info=info)
    except redis.ResponseError as exc:
        raise (RedisFull(str(exc)) if is_oom(exc) else exc) from None
    live = LiveScan(scan, {})
    try:
        _add_streams(live, publication)
    except BaseException:
        live.release()
        raise
    return live


def _add_streams(live: LiveScan, publication: Publication) -> None:
    for plan in publication.streams:
        stream = live.scan.create_stream(plan.definition())
        stop_sink(stream)
        live.streams[plan.name] = stream
    live.scan.prepare()
    live.scan.start()


def reopen(store: DataStore, key: str, publication: Publication) -> LiveScan:
    """The scan ``key`` of a publisher that died, with write permission; raises
    :class:`ScanGone` when Redis no longer has it, :class:`ScanClosed` when closed."""
    if not store._redis.exists(key):
        raise ScanGone(key)
    try:
        scan = load_scan_rw(store, key)
    except Exception as exc:  # blissdata's ScanNotFoundError and validation errors
        raise ScanGone(f"{key}: {exc}") from None
    if scan.state is ScanState.CLOSED:
        raise ScanClosed(f"{key} is already closed")
    live = LiveScan(scan, {}, reloaded=True)
    if scan.state is ScanState.CREATED:  # restored from just before prepare()
        _add_streams(live, publication)
        return live
    for plan in publication.streams:
        stream = scan.get_writer_stream(plan.name)
        stop_sink(stream)
        live.streams[plan.name] = stream
    if scan.state is ScanState.PREPARED:
        scan.start()
    return live


def stream_lengths(client: redis.Redis, live: LiveScan) -> tuple[dict[str, int], bool]:
    """Points each stream holds in Redis, and whether any stream is sealed."""
    pipe = client.pipeline(transaction=False)
    names = list(live.streams)
    for name in names:
        pipe.xrevrange(live.streams[name].key, count=1)
    lengths, sealed = {}, False
    for name, entries in zip(names, pipe.execute(), strict=True):
        if not entries:
            lengths[name] = 0
            continue
        entry_id, fields = entries[0]
        if entry_id == SEAL_ID:
            sealed = True
            lengths[name] = int(fields[b"id"])
        else:
            lengths[name] = int(entry_id.split(b"-")[0]) + int(fields.get(b"len", 1))
    return lengths, sealed


def send(client: redis.Redis, live: LiveScan, batches: Iterable[Batch]) -> int:
    """Write ``batches`` in one MULTI/EXEC; returns how many were new to Redis.

    A batch Redis already holds (same entry id) is refused by Redis and counted as
    there. Raises :class:`RedisFull` (nothing written) when Redis is out of memory,
    :class:`ScanGone` (nothing left behind) when Redis no longer has the scan: a Redis
    restarted empty must not get streams of a scan it does not know.
    """
    batches = list(batches)
    if not batches:
        return 0
    pipe = client.pipeline(transaction=True)
    pipe.exists(live.key)
    for b in batches:  # only a stream's first entry may create it
        pipe.xadd(live.streams[b.stream].key, b.xadd_fields(), id=f"{b.start}-1",
                  nomkstream=b.start > 0)
    try:
        exists, *replies = pipe.execute(raise_on_error=False)
    except redis.ResponseError as exc:  # EXECABORT: a command refused while queued
        if is_oom(exc):
            raise RedisFull(str(exc)) from None
        raise
    if not exists:
        created = {live.streams[b.stream].key for b, r in zip(batches, replies, strict=True)
                   if b.start == 0 and isinstance(r, bytes)}
        if created:
            client.delete(*created)
        raise ScanGone(f"{live.key} is not in Redis")
    new = 0
    for b, reply in zip(batches, replies, strict=True):
        if isinstance(reply, redis.ResponseError):
            if "equal or smaller" in str(reply):
                continue  # already in Redis (sent before a reconnection)
            if is_oom(reply):
                raise RedisFull(str(reply))
            raise reply
        if reply is None:  # NOMKSTREAM: the stream is gone (trimmed away, or deleted)
            raise ScanGone(f"stream {b.stream!r} of {live.key} is not in Redis")
        new += 1
    return new


def close(client: redis.Redis, live: LiveScan, end_info: dict[str, Any]) -> None:
    """Seal every stream and close the scan with ``end_info`` (retried as a whole)."""
    if not client.exists(live.key):  # sealing would create streams in a Redis without it
        raise ScanGone(f"{live.key} is not in Redis")
    for stream in live.streams.values():
        stream.seal()  # "already sealed" is fine: closing is retried after failures
    scan = live.scan
    if scan.state is ScanState.STARTED and not live.reloaded:
        scan.stop()
    scan.info.update(end_info)
    scan.close()


def redis_state(store: DataStore, key: str) -> ScanState:
    """The scan's state as Redis has it (blissdata's read-only view)."""
    try:
        return store.load_scan(key).state
    except Exception as exc:  # blissdata's ScanNotFoundError, validation errors
        raise ScanGone(f"{key}: {exc}") from None


def points_in_closed_scan(store: DataStore, key: str | None) -> int:
    """Points every stream of a (closed) scan holds in Redis (blissdata's read-only view)."""
    if key is None:
        return 0
    try:
        streams = store.load_scan(key).streams
    except Exception as exc:  # blissdata's ScanNotFoundError, validation errors
        raise ScanGone(f"{key}: {exc}") from None
    return min((len(stream) for stream in streams.values()), default=0)
