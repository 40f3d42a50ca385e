"""Pytest fixtures: a real Redis Stack on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sardana_redis.datastore import init_db
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.redis_server import RedisStackServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisStackServer]:
    """One Redis Stack server for the whole session (no persistence, 1 GB)."""
    with RedisStackServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_ha(tmp_path) -> Iterator[RedisHA]:
    """A fresh Redis Sentinel set on loopback: a primary, one replica, three sentinels
    (``redis_ha.url`` is its ``redis+sentinel://`` URL, ``redis_ha.primary_url`` the primary's)."""
    with RedisHA(tmp_path / "ha") as ha:
        yield ha


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
        client.function_flush()
        for index in client.execute_command("FT._LIST"):
            client.ft(index.decode()).dropindex()
    finally:
        client.close()


@pytest.fixture
def empty_redis_url(redis_server: RedisStackServer) -> str:
    """URL of the session server, emptied: no keys, no index, no function."""
    _flush(redis_server.url)
    return redis_server.url


@pytest.fixture
def redis_url(empty_redis_url: str) -> str:
    """URL of the session server, emptied and initialised for blissdata."""
    init_db(empty_redis_url)
    return empty_redis_url


@pytest.fixture(scope="module")
def module_redis_url(redis_server: RedisStackServer) -> str:
    """URL of the session server, emptied and initialised once for a test module that
    publishes its scans once and reads them in several tests (use no ``redis_url`` there)."""
    _flush(redis_server.url)
    init_db(redis_server.url)
    return redis_server.url
