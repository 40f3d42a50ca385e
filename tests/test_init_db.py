"""`sardana-redis init-db`: idempotent and safe under concurrency."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from blissdata.redis_engine.store import DataStore

from sardana_redis.datastore import DatabaseNotReady, init_db, open_data_store


def _init_cli(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sardana_redis", "init-db", "--redis-url", url],
        capture_output=True, text=True, timeout=60,
    )


def _assert_usable(url: str) -> None:
    store = DataStore(url + "?protocol=2")
    scan = store.create_scan({"name": "probe", "number": 7, "data_policy": "no_policy",
                              "session": "s1"})
    scan.prepare()
    scan.start()
    scan.stop()
    scan.close()
    _, keys = store.search_existing_scans(session="s1")
    assert keys == [scan.key]


def test_init_db_twice(empty_redis_url):
    first, second = _init_cli(empty_redis_url), _init_cli(empty_redis_url)
    assert first.returncode == 0, first.stderr
    assert "initialised" in first.stdout and "already" not in first.stdout
    assert second.returncode == 0, second.stderr
    assert "already initialised" in second.stdout
    _assert_usable(empty_redis_url)


def test_init_db_races_in_parallel_processes(empty_redis_url):
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(_init_cli, [empty_redis_url] * 6))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("already" not in r.stdout for r in results) >= 1
    _assert_usable(empty_redis_url)


def test_open_data_store_initialises_an_empty_server(empty_redis_url):
    store = open_data_store(empty_redis_url)
    assert store.get_last_scan_timetag() == "0-0"
    _assert_usable(empty_redis_url)


def test_init_db_refuses_a_database_with_foreign_keys(empty_redis_url):
    redis.Redis.from_url(empty_redis_url).set("someone:else", "1")
    with pytest.raises(DatabaseNotReady, match="holds 1 keys"):
        init_db(empty_redis_url, timeout=0.2)


@pytest.mark.stack
def test_init_db_unreachable_server_is_a_clear_error():
    out = subprocess.run(
        [sys.executable, "-m", "sardana_redis", "init-db", "--redis-url", "redis://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "error" in out.stderr and "Traceback" not in out.stderr
