"""Memory tracker: ours against blissdata's ``memory_tracker``, same Redis, load and writer.

1. Sustained load: 4 publishers (RedisBlissRecorder's publisher) send 1D points at a fixed
   rate, 1.5x ``maxmemory`` in total, while a SPEC writer slower than the publishers saves
   them; the tracker under test runs as its own process with the same command line.
   Reported: OutOfMemoryError seen by publishers, points dropped before the writer saved
   them, peak memory, tracker CPU per cycle.
2. Cycle cost at scale: one monitoring cycle with N closed scans in Redis (10k), in-process,
   ours (``MemoryTracker.cycle``) and blissdata's (``MemoryTracker.update``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import redis
from blissdata.redis_engine.memory_tracker import MemoryTracker as BlissdataTracker
from blissdata.redis_engine.store import DataStore

import sardana_redis.spec_writer.writer as spec_writer_module
from benchmarks.common import bench_main, cpu_seconds, print_table
from sardana_redis.datastore import init_db
from sardana_redis.following.follower import ScanFollower
from sardana_redis.following.ledger import WriterLedger
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.process import terminate_process_group
from sardana_redis.memory_tracker.tracker import MemoryTracker, TrackerSettings
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd
from sardana_redis.spec_writer.writer import SpecScanWriter
from tests.scan_descriptions import moveable, point_nb, requested_files, spectrum, step_scan

TRACKER_OPTIONS = ["--cleaning-threshold", "80", "--protected-history", "10",
                   "--monitoring-period", "1", "--closed-scan-deletion", "5"]


def description(number: int, path: str) -> ScanDescription:
    return step_scan(number, "bench", (point_nb(), moveable(), spectrum()), title=f"ascan #{number}",
                     user="bench", files=requested_files(spec=path))


def slow_writer(seconds_per_point: float) -> None:
    """Make the SPEC writer of this process slower than the publishers (per scan)."""
    fast = spec_writer_module.data_lines

    def data_lines(layout, batch):
        time.sleep(seconds_per_point * len(next(iter(batch.values()))))
        return fast(layout, batch)

    spec_writer_module.data_lines = data_lines


def sustained_load(tracker_cmd: list[str], quick: bool) -> dict:
    publishers_n, rate, points = 4, 100, 300 if quick else 500
    rounds = 2 if quick else 6
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp:
        tmp = Path(tmp)
        with RedisStackServer(tmp / "redis", maxmemory="64mb") as server:
            init_db(server.url)
            client = redis.Redis.from_url(server.url)
            follower = ScanFollower(server.url, "spec-writer", SpecScanWriter([tmp]))
            follower.start()
            time.sleep(1)
            with open(tmp / "tracker.log", "wb") as log:
                tracker = subprocess.Popen([*tracker_cmd, "--redis-url", server.url, *TRACKER_OPTIONS],
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            peak, stop = [0], threading.Event()

            def watch() -> None:
                while not stop.wait(0.1):
                    peak[0] = max(peak[0], int(client.info("memory")["used_memory"]))

            watcher = threading.Thread(target=watch)
            watcher.start()
            time.sleep(2)
            cpu0 = cpu_seconds(tracker.pid)
            spectrum, sent, published = np.random.random(1024), [], []
            try:
                for r in range(rounds):
                    pubs = [ScanPublisher(server.url, description(r * publishers_n + i + 1,
                                                                  str(tmp / f"w{i}.dat")))
                            for i in range(publishers_n)]
                    for p in pubs:
                        p.start()
                    t0 = time.perf_counter()
                    for i in range(points):
                        for p in pubs:
                            p.push({"point_nb": i, "mot01": float(i), "oned01": spectrum})
                        delay = t0 + (i + 1) / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    for p in pubs:
                        p.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS))
                    published += pubs
                    sent += [points] * len(pubs)
                ledger = WriterLedger(client, "spec-writer")
                deadline = time.monotonic() + 120
                while not all(ledger.is_done(p.key) for p in published if p.key) and \
                        time.monotonic() < deadline:
                    time.sleep(0.5)
                cpu = cpu_seconds(tracker.pid) - cpu0
            finally:
                stop.set()
                watcher.join()
                terminate_process_group(tracker, "tracker")
                follower.stop()
            text = (tmp / "tracker.log").read_text(errors="replace")
            cycles = len(re.findall(r"Memory usage:", text)) or 1
            written = sum(ledger.done(p.key).points if p.key and ledger.done(p.key) else 0
                          for p in published)
            return {
                "published": sum(sent),
                "oom": sum(1 for p in published if p.problem and "maxmemory" in p.problem),
                "problems": sum(1 for p in published if p.problem),
                "lost": sum(sent) - written,
                "peak": peak[0] / 1024**2,
                "cpu_per_cycle_ms": 1000 * cpu / cycles,
                "total_mb": sum(sent) * 8 / 1024,
            }


def make_scans(url: str, count: int) -> None:
    store = DataStore(url)

    def one(n: int) -> None:
        scan = store.create_scan({"name": "tiny", "number": n, "data_policy": "no_policy",
                                  "session": "bench"}, info={"title": "tiny"})
        scan.prepare()
        scan.start()
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def cycle_cost(count: int) -> list[list]:
    with tempfile.TemporaryDirectory(prefix="bench-tracker-") as tmp, \
            RedisStackServer(Path(tmp), maxmemory="1gb") as server:
        init_db(server.url)
        t0 = time.perf_counter()
        make_scans(server.url, count)
        print(f"{count} closed scans created in {time.perf_counter() - t0:.1f} s", flush=True)
        ours = MemoryTracker(redis.Redis.from_url(server.url),
                             TrackerSettings(closed_scan_deletion=3600, writers=()))
        first = _timed(ours.cycle)
        steady = min(_timed(ours.cycle) for _ in range(3))
        theirs = BlissdataTracker(DataStore(f"{server.url}?protocol=2"), 86400, 3600, 20)
        theirs_first = _timed(theirs.update)
        theirs_steady = min(_timed(theirs.update) for _ in range(3))
        return [["sardana-redis", f"{first:.0f}", f"{steady:.0f}"],
                ["blissdata memory_tracker", f"{theirs_first:.0f}", f"{theirs_steady:.0f}"]]


def _timed(func) -> float:
    t0 = time.perf_counter()
    func()
    return 1000 * (time.perf_counter() - t0)


def run(quick: bool = False) -> None:
    slow_writer(0.012)  # about 83 points/s per scan: slower than each 100 Hz publisher
    rows = []
    for name, cmd in (("sardana-redis memory-tracker", [sys.executable, "-m", "sardana_redis",
                                                        "memory-tracker"]),
                      ("blissdata memory_tracker", [str(Path(sys.executable).parent / "memory_tracker")])):
        print(f"sustained load with {name}...", flush=True)
        r = sustained_load(cmd, quick)
        rows.append([name, f"{r['total_mb']:.0f}", r["oom"], r["problems"], r["lost"],
                     f"{r['peak']:.1f}", f"{r['cpu_per_cycle_ms']:.1f}"])
    print_table("Sustained load: 64 MB maxmemory, 4 publishers x 100 Hz x 8 KB points, "
                "slow SPEC writer, same tracker options: " + " ".join(TRACKER_OPTIONS),
                ["tracker", "published (MB)", "publishers with OOM", "publishers with errors",
                 "points lost before saved", "peak memory (MB)", "tracker CPU/cycle (ms)"], rows)
    count = 2000 if quick else 10000
    print_table(f"One monitoring cycle with {count} closed scans in Redis (ms)",
                ["tracker", "first cycle (discovery)", "steady cycle"], cycle_cost(count))


if __name__ == "__main__":
    bench_main(run, __doc__)
