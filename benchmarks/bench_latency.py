"""Send-to-visible latency seen by a blissdata reader in another process, at fixed point rates.

The benchmark process pushes records at 100 Hz and 1 kHz for a few seconds
(RedisBlissRecorder with a fake record list, then blissdata's raw point-by-point
``send``); the ``dt`` column carries ``time.time()`` at push time. A reader
subprocess (``python -m benchmarks.bench_latency --reader URL``) waits for the
next scan, follows all its streams with ``CursorGroup.read`` until EndOfStream
and records arrival time - push time for every point. The CPU time of the
publishing process (recorder threads or blissdata's sinks) is reported too. The recorder
runs twice: on one Redis, and on a Redis managed by Sentinel with a replica (its
``redis+sentinel://`` URL: the reader follows the primary, the publisher WAITs for the
replica before it forgets a scan).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.common import (KEYS, ROOT, RawScan, new_recorder, pace, percentiles,
                               print_table, push_records, record_data, redis_ha, redis_server,
                               verdict)

TARGET_P95_MS = 50.0
RATES = (100, 1000)
TIME_STREAM = "dt"


def read_scan(url: str, timeout: float = 60.0) -> list[float]:
    """Reader side: follow the next scan; latencies (s) of every point of its ``dt`` stream."""
    from blissdata.exceptions import EndOfStream
    from blissdata.redis_engine.scan import ScanState
    from blissdata.streams import CursorGroup

    from sardana_redis.datastore import open_data_store

    store = open_data_store(url, init=False)  # a plain URL, or the primary a Sentinel names
    since = store.get_last_scan_timetag()
    print("READY", flush=True)
    _, key = store.get_next_scan(since=since, timeout=timeout)
    scan = store.load_scan(key)
    while scan.state < ScanState.PREPARED:
        scan.update(timeout=timeout)
    if not scan.streams:  # loaded during prepare(): JSON older than the state
        scan = store.load_scan(key)
    cursors = CursorGroup(scan.streams)
    latencies: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            views = cursors.read(timeout=1.0)
        except EndOfStream:
            break
        now = time.time()
        for stream, view in views.items():
            if stream.name == TIME_STREAM:
                latencies.extend((now - view.get_data()).tolist())
    return latencies


def measure(url: str, path: str, rate: float, duration: float, serialno: int) -> tuple[list[float], float]:
    """Publish ``rate * duration`` points by ``path`` ("recorder" or "raw") while a reader follows.

    Returns the reader's latencies (s) and the CPU this process used, as a fraction of one core."""
    reader = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_latency", "--reader", url],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert reader.stdout.readline().strip() == "READY"
        n = int(rate * duration)
        c0, t0 = time.process_time(), time.perf_counter()
        if path == "recorder":
            push_records(*new_recorder(url, serialno, n), rate, n, t0)
        else:
            raw = RawScan(url, serialno)
            for i in range(n):
                pace(rate, t0, i)
                raw.send(record_data(i, time.time()))
            raw.close()
        cpu = (time.process_time() - c0) / (time.perf_counter() - t0)
        out, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, f"reader exited with {reader.returncode}"
    latencies = json.loads(out.splitlines()[-1])
    assert len(latencies) == n, f"reader saw {len(latencies)} of {n} points"
    return latencies, cpu


def run(quick: bool = False) -> dict:
    duration = 1.0 if quick else 3.0
    results = {}
    with redis_server() as redis, redis_ha() as ha:
        serialno = 1
        for rate in RATES:
            for path, url in (("recorder", redis.url), ("sentinel", ha.url), ("raw", redis.url)):
                latencies, cpu = measure(url, "raw" if path == "raw" else "recorder", rate,
                                         duration, serialno)
                results[(rate, path)] = (*percentiles(latencies), cpu)
                serialno += 1
    ms = lambda v: f"{v * 1e3:.1f}"  # noqa: E731
    rows = []
    for rate in RATES:
        rec, ha, raw = (results[(rate, p)] for p in ("recorder", "sentinel", "raw"))
        rows.append([f"{rate:g} Hz", *map(ms, rec[:3]), f"{rec[3]:.0%}",
                     *map(ms, ha[:3]), f"{ha[3]:.0%}", *map(ms, raw[:3]), f"{raw[3]:.0%}"])
    print_table(f"Send-to-visible latency, ms ({len(KEYS)} columns, {duration:g} s per run, "
                f"reader in another process; target p95 <= {TARGET_P95_MS:g} ms), "
                "and the publishing process's CPU (share of one core)",
                ["rate", "recorder p50", "p95", "max", "CPU",
                 "recorder, Sentinel + replica p50", "p95", "max", "CPU",
                 "raw send p50", "p95", "max", "CPU"], rows)
    worst = max(results[(rate, p)][1] for rate in RATES for p in ("recorder", "sentinel")) * 1e3
    print(f"target p95 <= {TARGET_P95_MS:g} ms: {verdict(worst <= TARGET_P95_MS)} "
          f"(worst recorder p95 {worst:.1f} ms)\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reader", metavar="URL", help="run as the reader process")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.reader:
        print(json.dumps(read_scan(args.reader)), flush=True)
    else:
        run(args.quick)


if __name__ == "__main__":
    main()
