"""Load: 20 doors publishing at once (the recorder's publisher, at high point rates, scan
after scan into each door's files) and real Sardana scans, into a Redis with a maxmemory
smaller than what is published, while both writers and the memory tracker run as
services.  Every point must reach the files once."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from blissdata.exceptions import NoScanAvailable
from blissdata.redis_engine.store import DataStore

from sardana_redis.datastore import init_db
from sardana_redis.following.ledger import WriterLedger
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.services import ServiceProcess
from tests.recorder_helpers import configure, last_scan_id, run_ok
from tests.reliability.accounting import spec_points, tally
from tests.reliability.report import full_scale
from tests.services import writer_process

WRITERS = ("spec-writer", "nexus-writer")
PROCESSES, DOORS_PER_PROCESS = 4, 5  # 20 concurrent publishers
#: (scans per door, points per scan, points/s per scan, maxmemory): published data is about
#: 0.8x (quick: the tracker frees saved scans above 60 %) and 2x (full) maxmemory, at
#: rates this 2-core machine sustains with everything on it (see docs/reports/reliability.md)
SCALE = {"quick": (3, 300, 250, "64mb"), "full": (8, 600, 150, "128mb")}


@pytest.fixture
def load_redis(tmp_path):
    """A Redis Stack of its own whose maxmemory the load exceeds several times."""
    *_, maxmemory = SCALE["full" if full_scale() else "quick"]
    with RedisStackServer(tmp_path / "redis", maxmemory=maxmemory) as server:
        init_db(server.url)
        yield server


class MemoryPeak(threading.Thread):
    """Samples Redis ``used_memory`` until stopped; the highest sample is the peak."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))


class ScanWatcher(threading.Thread):
    """Notes the key of every new scan, by (session, number), as a blissdata reader would:
    the tracker may delete a saved scan before anyone searches for it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.store = DataStore(url)
        self.keys: dict[tuple[str, int], str] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        since = self.store.get_last_scan_timetag()
        while not self.stopped.is_set():
            try:
                since, key = self.store.get_next_scan(since=since, timeout=1)
            except NoScanAvailable:
                continue
            scan = self.store.load_scan(key)
            self.keys[(scan.session, scan.number)] = key


def start_services(url: str, root: Path, logs: Path) -> list[ServiceProcess]:
    services = [writer_process(w, url, root, logs / f"{w}.log").start() for w in WRITERS]
    tracker = ServiceProcess("memory-tracker", [
        "--redis-url", url, "--cleaning-threshold", "60", "--monitoring-period", "1",
        "--protected-history", "5", *sum((["--writer", w] for w in WRITERS), [])],
        logs / "memory-tracker.log")
    services.append(tracker.start(ready="Memory usage"))
    return services


def publish_load(url: str, root: Path, scans: int, points: int, rate: float) -> list[dict]:
    """The 20 doors, in 4 processes; the 5 doors of the first one have a 1D detector."""
    procs = []
    for i in range(PROCESSES):
        folder = root / f"beamline{i}"
        folder.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.load_publisher", url,
             str(1 + i * DOORS_PER_PROCESS), str(DOORS_PER_PROCESS), str(scans), str(points),
             str(rate),
             str(folder), "1" if i == 0 else "0"],
            stdout=subprocess.PIPE, text=True))
    summaries = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        summaries += [dict(json.loads(line), folder=str(root / f"beamline{procs.index(proc)}"))
                      for line in out.splitlines()]
    return summaries


def sardana_scans(door, url: str, scan_dir: Path, count: int) -> list[int]:
    """Real step scans published by RedisBlissRecorder and requested from both writers,
    with Sardana's SPEC_FileRecorder writing the oracle in the same scans."""
    configure(door, url, scan_dir, oracle=False, ScanFile=["oracle.dat", "scans.dat", "scans.h5"],
              ScanRecorder=["SPEC_FileRecorder", "RedisBlissRecorder", "RedisBlissRecorder"])
    numbers = []
    for _ in range(count):
        run_ok(door, "ascan", "mot01", 0, 1, 30, 0.01)
        numbers.append(last_scan_id(door))
    return numbers


def wait_all_done(url: str, keys: list[str], timeout: float) -> dict[str, dict[str, float]]:
    """Both writers' done time of every scan."""
    ledgers = {w: WriterLedger(redis.Redis.from_url(url), w) for w in WRITERS}
    done: dict[str, dict[str, float]] = {w: {} for w in WRITERS}
    deadline = time.monotonic() + timeout
    while any(len(done[w]) < len(keys) for w in WRITERS) and time.monotonic() < deadline:
        for w, ledger in ledgers.items():
            for key in keys:
                if key not in done[w] and (record := ledger.done(key)) is not None:
                    done[w][key] = record.time
        time.sleep(0.2)
    return done


@pytest.mark.skipif(not full_scale(), reason="make reliability only (about 35 s: make test's budget)")
def test_twenty_publishers_and_sardana_under_memory_pressure(door, load_redis, tmp_path, reliability):
    scans, points, rate, maxmemory = SCALE["full" if full_scale() else "quick"]
    url, root = load_redis.url, tmp_path / "data"
    (root / "sardana").mkdir(parents=True)
    services = start_services(url, root, tmp_path)
    peak, watcher = MemoryPeak(url), ScanWatcher(url)
    peak.start()
    watcher.start()
    started = time.monotonic()
    sardana_numbers: list[int] = []
    try:
        sardana = threading.Thread(target=lambda: sardana_numbers.extend(
            sardana_scans(door, url, root / "sardana", 3)))
        sardana.start()
        summaries = publish_load(url, root, scans, points, rate)
        sardana.join(300)
        sardana_keys = [watcher.keys[("tests", n)] for n in sardana_numbers]
        done = wait_all_done(url, [s["key"] for s in summaries] + sardana_keys, timeout=300)
    finally:
        for thread in (peak, watcher):
            thread.stopped.set()
            thread.join(10)
        tracker_log = services[-1].log()
        alive = [s.process.poll() is None for s in services]
        for service in services:  # before their Redis goes
            service.stop()
    elapsed = time.monotonic() - started

    published = {}
    for s in summaries:
        for kind, ext in (("spec", "dat"), ("nexus", "h5")):
            published[(kind, f"{s['folder']}/{s['door']}.{ext}", s["number"])] = s["points"]
    oracle = spec_points(root / "sardana" / "oracle.dat")
    for n in sardana_numbers:
        for kind, name in (("spec", "scans.dat"), ("nexus", "scans.h5")):
            published[(kind, str(root / "sardana" / name), n)] = len(oracle[n])
    lags = [done[w][s["key"]] - s["end"] for w in WRITERS for s in summaries if s["key"] in done[w]]
    result = reliability.record(tally(
        f"load: 20 doors x {scans} scans + {len(sardana_numbers)} Sardana scans", published,
        note=f"maxmemory {maxmemory}, {rate:g} points/s per scan",
    ))
    result.figures.update({
        "elapsed": f"{elapsed:.0f} s",
        "Redis peak": f"{peak.peak / 2**20:.0f} MB",
        "lag after scan end p50/max": f"{statistics.median(lags):.2f}/{max(lags):.2f} s" if lags else "-",
    })
    assert [s["problem"] for s in summaries if s["problem"] or not s["closed"]] == []
    assert all(len(oracle[n]) == 31 for n in sardana_numbers)
    assert result.clean and result.scans_out == result.scans_in, result
    assert "DROPPING" not in tracker_log and "OOM" not in tracker_log
    assert all(alive), "a service died under load"
