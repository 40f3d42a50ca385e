"""The memory tracker on a real Redis Stack: schedules, writer-aware retention, pressure."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import redis
from blissdata.redis_engine.scan import ScanState
from blissdata.streams.default import Stream

from sardana_redis.blissdata_private import release_sink
from sardana_redis.datastore import init_db, open_data_store
from sardana_redis.following.ledger import DoneRecord, WriterLedger
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.following.follower import ScanFollower
from sardana_redis.publishing.heartbeat import beat, heartbeat_key
from sardana_redis.redis_url import normalize_redis_url
from sardana_redis.memory_tracker.tracker import MemoryTracker, TrackerSettings, run
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd
from sardana_redis.spec_writer.writer import SpecScanWriter
from tests.publish import FakeScan, publish
from tests.scan_descriptions import moveable, point_nb, requested_files, spectrum, step_scan


@pytest.fixture
def small_redis(tmp_path):
    """A Redis Stack of its own with a 40 MB maxmemory, initialised for blissdata."""
    with RedisStackServer(tmp_path / "redis", maxmemory="40mb") as server:
        init_db(server.url)
        yield server


def client_of(url: str) -> redis.Redis:
    """A client as the product opens one: ``protocol=2`` (redis-py 8 defaults to RESP3)."""
    return redis.Redis.from_url(normalize_redis_url(url))


def tracker(url, **settings):
    return MemoryTracker(client_of(url), TrackerSettings(**settings))


def publish_big(url, number, points=40):
    store = open_data_store(url, init=False)
    scan = store.create_scan({"name": "ascan", "number": number, "data_policy": "no_policy",
                              "session": "tests"}, info={"title": f"big {number}"})
    spectra = scan.create_stream(Stream.make_definition("oned01", "float64", (1024,)))
    scan.prepare()
    scan.start()
    spectra.send(np.random.random((points, 1024)))
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    return scan.key


def test_closed_scans_expire_on_schedule(redis_url, caplog):
    caplog.set_level(logging.INFO)
    key = publish(redis_url, 1, None)
    t = tracker(redis_url, closed_scan_deletion=2, writers=())
    t.cycle()
    client = client_of(redis_url)
    assert 0 < client.ttl(key) <= 2
    assert f"Scan {key} is terminated, expiration set to 0:00:02 seconds" in caplog.text
    time.sleep(2.5)
    assert not client.exists(key)
    t.cycle()
    assert t.counters.tracked_scans == 0


def test_closed_scans_wait_until_every_writer_saved_them(redis_url):
    client = client_of(redis_url)
    key = publish(redis_url, 1, None)
    t = tracker(redis_url, closed_scan_deletion=60, writers=("spec-writer", "nexus-writer"))
    t.cycle()
    assert client.ttl(key) == -1
    WriterLedger(client, "spec-writer").mark_done(key, DoneRecord("written"))
    t.cycle()
    assert client.ttl(key) == -1  # the NeXus writer has not saved it yet
    WriterLedger(client, "nexus-writer").mark_done(key, DoneRecord("skipped"))
    t.cycle()
    assert 0 < client.ttl(key) <= 60


def test_abandoned_open_scan_is_closed_as_failure(redis_url):
    fake = FakeScan(redis_url, 1, None)
    fake.send(5)
    time.sleep(0.3)
    for stream in fake.streams.values():
        release_sink(stream)  # the "publisher" dies
    t = tracker(redis_url, inactive_scan_deletion=1, closed_scan_deletion=60, writers=())
    t.cycle()
    time.sleep(1.2)
    t.cycle()
    scan = open_data_store(redis_url, init=False).load_scan(fake.key())
    assert scan.state == ScanState.CLOSED
    assert scan.info["end_reason"] == "FAILURE"
    assert "inactive" in scan.info["publication_error"]
    assert len(scan.streams["mot01"][:]) == 5  # sealed, data kept
    t.cycle()
    assert 0 < client_of(redis_url).ttl(fake.key()) <= 60
    assert t.counters.closed_abandoned == 1


def test_quiet_scan_with_heartbeat_stays_open_until_its_publisher_stops(redis_url, tmp_path):
    """A paused scan (no data, heartbeats) is kept; once heartbeats stop it is closed after
    publisher_timeout, not inactive_scan_deletion. RedisBlissRecorder's publisher beats."""
    publisher = ScanPublisher(redis_url, _description(1, str(tmp_path / "s.dat")))
    publisher.start()
    client = client_of(redis_url)
    deadline = time.monotonic() + 10
    while publisher.key is None or not client.exists(heartbeat_key(publisher.key)):
        assert time.monotonic() < deadline, "the publisher sends heartbeats"
        time.sleep(0.05)
    assert publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS))
    assert not client.exists(heartbeat_key(publisher.key)), "no heartbeat once closed"

    fake = FakeScan(redis_url, 2, None)
    t = tracker(redis_url, publisher_timeout=1, inactive_scan_deletion=3600, writers=())
    for _ in range(4):  # 1.6 s without data, with heartbeats
        beat(client, fake.key())
        t.cycle()
        time.sleep(0.4)
    assert open_data_store(redis_url, init=False).load_scan(fake.key()).state < ScanState.CLOSED
    time.sleep(1.1)  # the publisher died
    t.cycle()
    scan = open_data_store(redis_url, init=False).load_scan(fake.key())
    assert scan.state == ScanState.CLOSED and scan.info["end_reason"] == "FAILURE"
    assert "no heartbeat" in scan.info["publication_error"]
    for stream in fake.streams.values():
        release_sink(stream)


def test_under_pressure_saved_scans_go_first(small_redis, caplog):
    url = small_redis.url
    client = client_of(url)
    ledger = WriterLedger(client, "spec-writer")
    saved, unsaved = [], []
    for n in range(1, 9):
        key = publish_big(url, n, points=300)  # about 2.4 MB each
        (saved if n % 2 else unsaved).append(key)
    for key in saved:
        ledger.mark_done(key, DoneRecord("written"))
    t = tracker(url, cleaning_threshold=50, writers=("spec-writer",))
    t.cycle()
    assert not any(client.exists(k) for k in saved[:2]), "saved scans freed first, oldest first"
    assert all(client.exists(k) for k in unsaved), "unsaved scans survive"
    assert "DROPPING" not in caplog.text
    assert t.counters.used_memory < t.counters.max_memory * 50 // 100


def test_when_nothing_else_is_left_drops_are_reported(small_redis, caplog):
    url = small_redis.url
    client = client_of(url)
    WriterLedger(client, "spec-writer").set_cursor("0-0")  # a writer that saved nothing
    keys = [publish_big(url, n, points=300) for n in range(1, 9)]
    t = tracker(url, cleaning_threshold=40, unsaved_threshold=40)  # writers: found in Redis (16 MB)
    assert t.writers() == ("spec-writer",)
    t.cycle()
    dropped = [k for k in keys if not client.exists(k)]
    assert dropped and dropped == keys[:len(dropped)], "oldest first"
    assert t.counters.dropped_unpersisted_scans == len(dropped)
    for key in dropped:
        assert f"DROPPING UNSAVED DATA of scan {key}" in caplog.text


def test_command_line_options_and_log_lines(small_redis):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sardana_redis", "memory-tracker", "--redis-url", small_redis.url,
         "--monitoring-period", "0.2", "--cleaning-threshold", "75", "--protected-history", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    time.sleep(3)
    proc.terminate()
    out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out
    assert " INFO: INIT | Redis max. memory: 40MB" in out
    assert " INFO: INIT | Mem. usage to trigger cleanup: 75% (30MB)" in out
    assert " INFO: INIT | Protected history length: 60 seconds" in out
    assert " INFO: Memory usage: " in out and "MB" in out


def test_no_maxmemory_is_a_clear_error(small_redis):
    client_of(small_redis.url).config_set("maxmemory", 0)
    out = subprocess.run([sys.executable, "-m", "sardana_redis", "memory-tracker", "--redis-url",
                          small_redis.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "no 'maxmemory'" in out.stderr and "--max-memory" in out.stderr


def _description(number: int, path: str) -> ScanDescription:
    return step_scan(number, "load", (point_nb(), moveable(), spectrum()),
                     files=requested_files(spec=path))


def test_sustained_load_no_out_of_memory_and_nothing_lost(small_redis, tmp_path, caplog):
    """1.8x maxmemory published in 25 s by 3 concurrent publishers (3 MB/s), with a SPEC
    writer saving it and the tracker freeing what is saved: no publisher meets
    OutOfMemoryError, every point is in the files, nothing unsaved is dropped."""
    caplog.set_level(logging.INFO)
    url = small_redis.url
    follower = ScanFollower(url, "spec-writer", SpecScanWriter([tmp_path]))
    follower.start()
    stop = threading.Event()
    settings = TrackerSettings(cleaning_threshold=60, monitoring_period=1, writers=("spec-writer",))
    client = client_of(url)
    memory_tracker = MemoryTracker(client, settings)
    tracker_thread = threading.Thread(target=run, args=(client, settings, stop, memory_tracker))
    tracker_thread.start()
    points, rounds = 500, 6
    try:
        time.sleep(1)
        publishers, spectrum = [], np.random.random(1024)
        for n in range(1, 3 * rounds + 1):  # rounds of 3 concurrent scans, 125 points/s each
            path = str(tmp_path / f"load{n % 3}.dat")
            publishers.append(ScanPublisher(url, _description(n, path)))
            publishers[-1].start()
            if n % 3 == 0:
                for i in range(points):
                    for p in publishers[-3:]:
                        p.push({"point_nb": i, "mot01": i / 10, "oned01": spectrum})
                    time.sleep(0.008)
                for p in publishers[-3:]:
                    assert p.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS))
        problems = [p.problem for p in publishers if p.problem]
        assert not problems, problems
        ledger = WriterLedger(client_of(url), "spec-writer")
        deadline = time.monotonic() + 60
        while not all(ledger.is_done(p.key) for p in publishers):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [ledger.done(p.key).points for p in publishers] == [points] * (3 * rounds)
    finally:
        stop.set()
        tracker_thread.join(30)
        follower.stop()
    assert "DROPPING" not in caplog.text
    assert "OOM" not in caplog.text
    assert memory_tracker.counters.freed_bytes > 20 * 1024**2, "the tracker had to free memory"
    assert memory_tracker.counters.dropped_unpersisted_scans == 0
    lines = sum(1 for f in tmp_path.glob("load*.dat") for line in f.read_text().splitlines()
                if line[:1].isdigit())
    assert lines == points * 3 * rounds
