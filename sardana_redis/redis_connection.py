"""Opening Redis from a URL: a plain server, or the primary a Sentinel names.

Every component opens Redis through :func:`redis_client` (and blissdata's
``DataStore`` through :func:`sardana_redis.datastore.open_data_store`). With a
``redis+sentinel://`` URL the client is redis-py's Sentinel-managed one: each new
connection asks the sentinels for the current primary, and a connection to a primary
that was demoted (or died) is dropped, so the next command goes to the promoted one.
Code that retries on ``redis.ConnectionError`` follows a failover without knowing it.

Replication is asynchronous: a write the primary acknowledged can be lost if it dies
before a replica has it. :func:`replicated` is Redis' ``WAIT``: what a component must
not lose (the publisher's last batches before it forgets its spool, a writer's ledger)
is confirmed by ``wait_replicas`` replicas before the component moves on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import SSLConnection, parse_url
from redis.sentinel import Sentinel

from sardana_redis.redis_url import (
    SentinelURL,
    is_sentinel_url,
    normalize_redis_url,
    parse_sentinel_url,
)

log = logging.getLogger(__name__)

#: Channel of the write that :func:`replicated` makes before its WAIT (nobody listens).
REPLICATION_CHANNEL = "sardana_redis:replication"


def _node_options(target: SentinelURL) -> dict[str, Any]:
    """redis-py keyword arguments of the data nodes' connections (no host, no port)."""
    options = parse_url(target.node_url("localhost", 6379))
    for name in ("host", "port"):
        options.pop(name, None)
    options["protocol"] = int(options.get("protocol", 2))
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True  # Sentinel's pool picks its own TLS connection class
    return options


def _sentinel_options(target: SentinelURL, node: dict[str, Any]) -> dict[str, Any]:
    """redis-py keyword arguments of the connections to the sentinels themselves."""
    options = {k: v for k, v in node.items()
               if k.startswith(("socket_", "ssl")) or k in ("protocol", "client_name")}
    options["username"] = target.sentinel_username
    options["password"] = target.sentinel_password
    return options


def sentinel_for(url: str) -> tuple[Sentinel, SentinelURL, dict[str, Any]]:
    """redis-py's :class:`Sentinel` for a ``redis+sentinel://`` URL, the parsed URL, and the
    data nodes' connection options."""
    target = parse_sentinel_url(url)
    node = _node_options(target)
    return Sentinel(list(target.sentinels), sentinel_kwargs=_sentinel_options(target, node),
                    **node), target, node


def redis_client(url: str | None, **overrides: Any) -> redis.Redis:
    """A client of the Redis at ``url`` (normalised; ``overrides``: redis-py options).

    For a Sentinel URL, a client of whichever node is primary at each connection."""
    url = normalize_redis_url(url)
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **overrides)
    sentinel, target, _ = sentinel_for(url)
    return sentinel.master_for(target.service, **overrides)


def primary_url(url: str | None) -> str:
    """The plain URL of the server that holds the data now: ``url`` itself (normalised),
    or for a Sentinel URL the primary's, asked from the sentinels
    (``redis.sentinel.MasterNotFoundError``, a ``ConnectionError``, when none knows it)."""
    url = normalize_redis_url(url)
    if not is_sentinel_url(url):
        return url
    sentinel, target, _ = sentinel_for(url)
    host, port = sentinel.discover_master(target.service)
    return target.node_url(host, port)


@dataclass(frozen=True)
class ReplicaWait:
    """How many replicas must acknowledge a write, and how long one WAIT lasts."""

    replicas: int = 0
    timeout: float = 2.0

    @classmethod
    def of(cls, url: str | None) -> ReplicaWait:
        """The URL's ``wait_replicas``/``wait_timeout``; a plain URL waits for none."""
        url = normalize_redis_url(url)
        if not is_sentinel_url(url):
            return cls()
        target = parse_sentinel_url(url)
        return cls(target.wait_replicas, target.wait_timeout)


class NotReplicated(redis.ConnectionError):
    """Fewer replicas than required acknowledged a write in time: the primary may be one a
    failover left behind (still accepting writes that its successor never gets), or its
    replicas are down or behind. Handled as Redis unreachable: try again, with new
    connections (which ask the sentinels where the primary is)."""


def ensure_replicated(client: redis.Redis, wait: ReplicaWait, what: str) -> None:
    """Raise :class:`NotReplicated` (after dropping the client's connections) unless
    :func:`replicated`."""
    if not replicated(client, wait):
        # idle connections only (others are in use by other threads): the next new one asks
        # the sentinels, and a pool that learns of a new primary drops the old ones on release
        client.connection_pool.disconnect(inuse_connections=False)
        raise NotReplicated(f"fewer than {wait.replicas} replica(s) acknowledged {what} "
                            f"within {wait.timeout:g} s")


def replicated(client: redis.Redis, wait: ReplicaWait) -> bool:
    """True once ``wait.replicas`` replicas hold every write made (on any connection) before
    this call; False when fewer acknowledged within ``wait.timeout`` (Redis' ``WAIT``).

    WAIT only covers its own connection's writes, so it follows a write of its own on the
    same connection (a PUBLISH nobody reads: always replicated, no key): replication is in
    order, so every earlier write is covered too."""
    if wait.replicas <= 0:
        return True
    pipe = client.pipeline(transaction=False)
    pipe.publish(REPLICATION_CHANNEL, b"")
    pipe.wait(wait.replicas, max(1, int(wait.timeout * 1000)))
    _, acknowledged = pipe.execute()
    return int(acknowledged) >= wait.replicas


#: Longest wait between two attempts to reach a plain Redis, and a Sentinel-managed one
#: (asking the sentinels is cheap, and a failover is over in seconds: the first point after
#: it must not wait for a long backoff).
RETRY_MAX, RETRY_MAX_SENTINEL = 30.0, 1.0


class Backoff:
    """Delays between attempts to reach Redis: ``first``, doubling up to a maximum that
    depends on the URL (:data:`RETRY_MAX`, or :data:`RETRY_MAX_SENTINEL`)."""

    def __init__(self, url: str | None, first: float = 0.5) -> None:
        self.maximum = RETRY_MAX_SENTINEL if is_sentinel_url(url) else RETRY_MAX
        self.first = min(first, self.maximum)
        self._next = self.first

    def next(self) -> float:
        """The delay before the next attempt (each call doubles the following one)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Redis answered: the next failure waits ``first`` again."""
        self._next = self.first
