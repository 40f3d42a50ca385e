"""The publisher spool: its SQLite store (fast, no Redis), and replaying what a killed
publisher left in it into a real Redis (``sardana-redis spool show|replay``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from blissdata.redis_engine.store import DataStore

from sardana_redis.local_stack.process import free_port
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.publishing.publication import Batch, Publication, StreamPlan
from sardana_redis.publishing.spool import Spool, SpoolUnavailable

PUBLICATION = Publication("ascan #1", {"name": "ascan", "number": 1, "session": "s",
                                       "data_policy": "no_policy"}, {"title": "t"},
                          (StreamPlan("a", "float64", ()), StreamPlan("b", "int64", ())))
DEAD = "somehost-that-is-not-this-one-for-sure:1:1"


def batches(start: int, n: int) -> list[Batch]:
    return [Batch(name, start, n, np.arange(start, start + n, dtype=float).tobytes())
            for name in ("a", "b")]


def test_batches_round_trip_in_point_order_from_where_redis_stopped(tmp_path):
    spool = Spool(tmp_path / "spool")
    scan = spool.add_scan(PUBLICATION, "redis://x")
    for start in range(0, 1000, 10):
        spool.append(scan, batches(start, 10))
    got = list(spool.batches(scan, {"a": 500, "b": 495}, page=7))
    assert [(b.stream, b.start) for b in got[:3]] == [("b", 490), ("a", 500), ("b", 500)]
    assert sum(b.length for b in got if b.stream == "a") == 500
    assert got[-1].payload == batches(990, 10)[1].payload
    held = spool.scans()[0]
    assert (held.points, held.publication, held.scan_key) == (1000, PUBLICATION, None)
    spool.forget(scan)
    assert spool.scans() == [] and spool.usage().bytes == 0


def test_orphans_are_taken_over_once(tmp_path):
    spool = Spool(tmp_path)
    mine = spool.add_scan(PUBLICATION, "redis://x")
    dead = spool.add_scan(PUBLICATION, "redis://x", owner="abandoned")
    assert [s.id for s in spool.orphans()] == [dead]
    other = Spool(tmp_path)  # another process' view of the same folder
    assert other.claim(dead, "abandoned")
    assert not spool.claim(dead, "abandoned")
    assert spool.orphans() == [] and mine


def test_a_folder_that_cannot_be_written_or_is_full_is_refused_clearly(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    spool = Spool(blocked / "spool")
    with pytest.raises(SpoolUnavailable, match="cannot be written"):
        spool.add_scan(PUBLICATION, "redis://x")
    assert not spool.usage().writable
    small = Spool(tmp_path / "small", max_bytes=1000)
    scan = small.add_scan(PUBLICATION, "redis://x")
    small.append(scan, batches(0, 10))
    with pytest.raises(SpoolUnavailable, match="is full"):
        small.append(scan, batches(10, 100))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sardana_redis", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("ended", [True, False], ids=["ended", "killed-mid-scan"])
@pytest.mark.stack
def test_replay_publishes_what_a_killed_publisher_left(ended, tmp_path):
    """A publisher killed while Redis was down: `spool replay` creates the scan with every
    point and closes it (its real end if it had ended, else FAILURE)."""
    port = free_port()
    folder = tmp_path / "spool"
    redis = RedisStackServer(tmp_path / "redis", port=port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.spool_publisher", redis.url, str(folder), "7", "500",
         "end" if ended else "open"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "SPOOLED"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shown = cli("spool", "show", "--spool-dir", str(folder))
    assert "1 scans, 500 points" in shown.stdout, shown
    assert "not in Redis yet" in shown.stdout and ("ended" if ended else "not ended") in shown.stdout
    with redis:
        out = cli("spool", "replay", "--spool-dir", str(folder), "--timeout", "60")
        assert out.returncode == 0, out.stderr
        assert "1 scans published and closed, 0 still held" in out.stdout
        store = DataStore(redis.url + "?protocol=2")
        _, (key,) = store.search_existing_scans(session="spool", number=7)
        scan = store.load_scan(key)
        assert scan.state.name == "CLOSED"
        assert list(scan.streams["ct01"][:]) == [float(i) for i in range(500)]
        assert scan.info["end_reason"] == ("SUCCESS" if ended else "FAILURE")
        if not ended:
            assert "its MacroServer stopped" in scan.info["publication_error"]
    assert "0 scans" in cli("spool", "show", "--spool-dir", str(folder)).stdout


def test_the_publisher_refuses_transitions_its_state_machine_does_not_allow(tmp_path):
    from sardana_redis.publishing.publisher import TRANSITIONS, PublisherState, ScanPublisher
    from tests.scan_descriptions import step_scan

    description = step_scan(1, "s", title="ascan", user="t")
    publisher = ScanPublisher("redis://127.0.0.1:1", description, spool=Spool(tmp_path))
    assert publisher.state is PublisherState.OPENING
    with pytest.raises(RuntimeError, match="OPENING -> CLOSING is not allowed"):
        publisher._to(PublisherState.CLOSING)
    assert all(not TRANSITIONS[s] for s in (PublisherState.CLOSED, PublisherState.ABANDONED))
    for state, following in TRANSITIONS.items():
        assert PublisherState.ABANDONED in following or not following, state
