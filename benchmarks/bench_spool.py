"""The publisher spool: what a Redis outage costs, and how fast the spool catches up.

A 1 kHz scan (1 motor + 8 counters + #Pt No + dt) is recorded through the real
RedisBlissRecorder while Redis is down, for as many points as a 3-minute outage
holds (180,000; quick: 18,000); then Redis starts. Measured: the scan thread's
cost per record while everything goes to the spool, the spool's write rate, and
the catch-up rate into Redis (points per second) until the scan is whole and
closed. The outage is simulated by its points, not waited for in real time.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    Record,
    bench_main,
    check_published,
    new_recorder,
    print_table,
    record_data,
)
from sardana_redis.datastore import init_db
from sardana_redis.local_stack.process import free_port
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.publishing.spool import SPOOL_ENV

TARGET_US = 1.0


def run(quick: bool = False) -> None:
    n = 18_000 if quick else 180_000
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        os.environ[SPOOL_ENV] = str(Path(tmp) / "spool")
        redis = RedisStackServer(Path(tmp) / "redis", port=free_port(), maxmemory="4gb")
        records = [Record(record_data(i, i * 0.001), i) for i in range(n)]
        rec, rl, macro = new_recorder(redis.url, 1, n)
        rec.startRecordList(rl)
        publisher = rec._publisher
        c0, t0 = time.thread_time(), time.perf_counter()
        for r in records:
            rec.writeRecord(r)
        loop_cpu, loop_wall = time.thread_time() - c0, time.perf_counter() - t0
        while publisher.points_taken < n:
            time.sleep(0.01)
        spooled = time.perf_counter() - t0
        rl.end()
        rec.endRecordList(rl)  # returns at once: Redis is known to be away
        size = sum(p.stat().st_size for p in Path(os.environ[SPOOL_ENV]).iterdir())
        with redis:
            init_db(redis.url)
            t1 = time.perf_counter()
            assert publisher.wait(600), "the spool caught up"
            catch_up = time.perf_counter() - t1
            check_published(redis.url, 1, n)
    per_record = loop_cpu / n * 1e6
    print_table("Redis down for a 3-minute 1 kHz scan, then back", ["measure", "value"], [
        ("points (11 columns)", f"{n:,}"),
        ("scan thread per record (CPU)", f"{per_record:.2f} us (target <= {TARGET_US} us: "
                                         f"{'met' if per_record <= TARGET_US else 'MISSED'})"),
        ("scan thread per record (wall)", f"{loop_wall / n * 1e6:.2f} us"),
        ("into the spool", f"{n / spooled:,.0f} points/s ({size / 1e6:.1f} MB on disk)"),
        ("catch-up into Redis", f"{n / catch_up:,.0f} points/s ({catch_up:.1f} s, scan closed)"),
    ])
    assert not [w for w in macro.warnings if "lost" in w], macro.warnings


if __name__ == "__main__":
    bench_main(run, __doc__)
