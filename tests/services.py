"""Writer service processes in tests, and waiting for their results."""

from __future__ import annotations

import time
from pathlib import Path

from sardana_redis.datastore import open_data_store
from sardana_redis.following.ledger import KEY_PREFIX, DoneRecord, WriterLedger
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.memory_tracker import scan_keys
from sardana_redis.redis_connection import redis_client
from tests.recorder_helpers import SESSION
from tests.reliability.report import full_scale

#: The writers' lease in the tests (``--lease``): how long a killed writer's scans wait for a
#: takeover. Short for make test's budget; make reliability measures the default (10 s).
WRITER_LEASE = None if full_scale() else 4.0


def writer_process(command: str, redis_url: str, root: Path, log_file: Path) -> ServiceProcess:
    """``sardana-redis <command>`` (a writer) writing under ``root`` (not started yet), with
    the tests' :data:`WRITER_LEASE`."""
    lease = ["--lease", str(WRITER_LEASE)] if WRITER_LEASE else []
    return ServiceProcess(command, ["--redis-url", redis_url, "--root", str(root), *lease],
                          log_file)


def scan_key(redis_url: str, number: int, session: str = SESSION, timeout: float = 30) -> str:
    store = open_data_store(redis_url, init=False)
    deadline = time.monotonic() + timeout
    while True:
        _, keys = store.search_existing_scans(session=session, number=number)
        if keys:
            assert len(keys) == 1, keys
            return keys[0]
        assert time.monotonic() < deadline, f"no scan #{number}"
        time.sleep(0.1)


def wait_done(redis_url: str, key: str, writer: str, timeout: float = 60) -> DoneRecord:
    """The writer's done record of a scan, once it has one."""
    ledger = WriterLedger(redis_client(redis_url), writer)
    deadline = time.monotonic() + timeout
    while (record := ledger.done(key)) is None:
        assert time.monotonic() < deadline, f"{writer} did not finish {key}"
        time.sleep(0.1)
    return record


def wait_saved_points(redis_url: str, key: str, writer: str, points: int, timeout: float = 30) -> int:
    """The points ``writer`` recorded as on disk for a scan, once at least ``points``."""
    client = redis_client(redis_url)
    deadline = time.monotonic() + timeout
    while (saved := int(client.hget(f"{KEY_PREFIX}:{writer}:points", key) or 0)) < points:
        assert time.monotonic() < deadline, f"{writer} recorded {saved} points of {key}"
        time.sleep(0.1)
    return saved


def free_saved_points(redis_url: str, key: str, points: int) -> None:
    """What the memory tracker does under pressure: drop the first ``points`` points of
    every stream of a scan still being written, once its writers recorded them on disk."""
    client = redis_client(redis_url)
    scan, = scan_keys.load_keys(client, [(key, 0)])
    assert scan_keys.trim_before(client, scan, points) > 0


def roll_back_ledger(redis_url: str, writer: str, key: str, progress: dict[str, int],
                     points: int) -> None:
    """What a Redis restored from an older snapshot does to a writer's ledger: the scan is
    pending again, not done, with the progress it had when the snapshot was taken."""
    ledger = WriterLedger(redis_client(redis_url), writer)
    ledger.client.hdel(f"{KEY_PREFIX}:{writer}:done", key)
    ledger.client.zadd(f"{KEY_PREFIX}:{writer}:pending", {key: 0})
    ledger.set_progress(key, progress)
    ledger.set_points({key: points})
