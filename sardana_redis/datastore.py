"""Opening a blissdata :class:`DataStore`, initialising an empty server safely.

blissdata only initialises an *empty* database (``DataStore(url, init_db=True)``
refuses one with keys) and two processes racing to do it can both pass the
emptiness check.  :func:`open_data_store` makes initialisation idempotent and
race-safe: the blissdata protocol key is written last by a successful set-up,
so a process that loses the race waits for it instead of failing.
"""

from __future__ import annotations

import logging
import time

import redis
from blissdata.redis_engine.store import DataStore

from sardana_redis.blissdata_private import use_connection_pool
from sardana_redis.redis_connection import primary_url, redis_client
from sardana_redis.redis_url import is_sentinel_url, normalize_redis_url, redact_redis_url

log = logging.getLogger(__name__)

#: Key written by blissdata once a database is set up (see blissdata's store.py).
PROTOCOL_KEY = "_PROTOCOL_VERSION_"
REQUIRED_MODULES = ("ReJSON", "search")
#: Prefix of the keys sardana_redis keeps beside the scans (writer ledgers, heartbeats).
OWN_KEY_PREFIX = b"sardana_redis:"


class DatabaseNotReady(RuntimeError):
    """The Redis server cannot hold blissdata scans (modules missing, foreign keys...)."""


def check_modules(client: redis.Redis) -> None:
    """Raise :class:`DatabaseNotReady` unless ReJSON and search are loaded."""
    names = {m[b"name"].decode() for m in client.module_list()}
    missing = [m for m in REQUIRED_MODULES if m not in names]
    if missing:
        raise DatabaseNotReady(
            f"Redis server lacks the module(s) {', '.join(missing)}: blissdata needs a "
            "Redis Stack (run 'sardana-redis server' or the docker-compose service)"
        )


def is_initialized(client: redis.Redis) -> bool:
    """True when blissdata's indexes and protocol key are present."""
    return client.exists(PROTOCOL_KEY) == 1


def stale_own_keys(client: redis.Redis) -> list[bytes]:
    """sardana_redis' own keys when they are all a database without blissdata's set-up
    holds: they describe scans Redis lost (restarted without persistence, or flushed)
    and would keep blissdata from initialising it. Empty when any other key is there."""
    keys = []
    for key in client.scan_iter(count=1000):
        if not key.startswith(OWN_KEY_PREFIX):
            return []
        keys.append(key)
    return keys


def init_db(url: str, timeout: float = 10.0) -> bool:
    """Initialise blissdata's indexes on the server at ``url``.

    Returns True when this call did the set-up, False when the database was
    already initialised (by an earlier call or by a concurrent process).
    Raises :class:`DatabaseNotReady` when the server cannot be initialised.
    """
    url = normalize_redis_url(url)
    client = redis_client(url)
    try:
        if is_initialized(client):  # the usual case: one EXISTS, no admin command
            return False
        try:
            check_modules(client)
        except redis.exceptions.NoPermissionError as exc:
            raise DatabaseNotReady(
                f"{redact_redis_url(url)} is not initialised for blissdata and its user may not "
                f"do it ({exc}): run 'sardana-redis init-db' as an admin user (docs/security.md)"
            ) from None
        deadline = time.monotonic() + timeout
        while True:
            if is_initialized(client):
                return False
            nkeys = client.dbsize()
            stale = stale_own_keys(client) if nkeys else []
            if stale:
                log.warning("%s lost its blissdata set-up (restarted without persistence, or "
                            "flushed): removing %d stale sardana_redis keys (writer ledgers, "
                            "heartbeats) of the scans it no longer holds",
                            redact_redis_url(url), len(stale))
                client.delete(*stale)
                continue
            if nkeys:
                # Keys but no protocol key yet: either another process is half
                # way through its set-up, or the database holds foreign data.
                if time.monotonic() > deadline:
                    raise DatabaseNotReady(
                        f"{redact_redis_url(url)} holds {nkeys} keys but no blissdata "
                        "set-up; use an empty database (another db number or server)"
                    )
            else:
                try:
                    DataStore(primary_url(url), init_db=True)
                    log.info("Initialised blissdata database on %s", redact_redis_url(url))
                    return True
                except (RuntimeError, redis.ResponseError) as exc:
                    # Lost a race with another initialiser: wait for its result.
                    if time.monotonic() > deadline:
                        raise DatabaseNotReady(f"cannot initialise blissdata: {exc}") from exc
                    log.debug("concurrent initialisation, waiting: %s", exc)
            time.sleep(0.05)
    finally:
        client.close()


def open_data_store(url: str, init: bool = True, client: redis.Redis | None = None) -> DataStore:
    """Return a :class:`DataStore` on ``url`` (``protocol=2`` forced); with a Sentinel URL,
    one that follows the primary across failovers (through ``client``'s connections, if
    given: dropping them then moves both to the new primary).

    With ``init`` (the default), an empty server is initialised first.
    """
    url = normalize_redis_url(url)
    if init:
        init_db(url)
    plain = primary_url(url)
    try:
        store = DataStore(plain)
    except RuntimeError as exc:  # blissdata's message holds the URL, password included
        raise DatabaseNotReady(str(exc).replace(plain, redact_redis_url(plain))) from None
    if is_sentinel_url(url):
        use_connection_pool(store, client or redis_client(url))
    return store
