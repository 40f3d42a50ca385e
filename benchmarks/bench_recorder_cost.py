"""Recorder cost per record (1 motor + 8 counters + #Pt No + dt), without Sardana servers.

RedisBlissRecorder fed flat out by a fake record list: wall time of
startRecordList + N writeRecord + endRecordList (which waits until the scan is
closed in Redis), and the scan thread's own cost (the writeRecord loop).
Compared with blissdata's raw point-by-point path (one ``send`` per column).
"""

from __future__ import annotations

import time

from benchmarks.common import (RawScan, Record, check_published, new_recorder, print_table,
                               bench_main, record_data, redis_server)

TARGET_US = 5.0


def bench_recorder(url: str, n: int, serialno: int) -> dict[str, float]:
    records = [Record(record_data(i, i * 0.01), i) for i in range(n)]
    rec, rl, macro = new_recorder(url, serialno, n)
    t0 = time.perf_counter()
    rec.startRecordList(rl)
    t1, c1 = time.perf_counter(), time.thread_time()
    for r in records:
        rec.writeRecord(r)
    t2, c2 = time.perf_counter(), time.thread_time()
    rl.end()
    rec.endRecordList(rl)
    t3 = time.perf_counter()
    assert not macro.warnings, macro.warnings
    check_published(url, serialno, n)
    return {"n": n, "total": t3 - t0, "start": t1 - t0, "loop": t2 - t1, "loop_cpu": c2 - c1,
            "end": t3 - t2}


def bench_raw(url: str, n: int, serialno: int) -> dict[str, float]:
    datas = [record_data(i, i * 0.01) for i in range(n)]
    t0 = time.perf_counter()
    raw = RawScan(url, serialno)
    t1, c1 = time.perf_counter(), time.thread_time()
    for data in datas:
        raw.send(data)
    t2, c2 = time.perf_counter(), time.thread_time()
    raw.close()
    t3 = time.perf_counter()
    assert all(len(s) == n for s in raw.store.load_scan(raw.scan.key).streams.values())
    return {"n": n, "total": t3 - t0, "start": t1 - t0, "loop": t2 - t1, "loop_cpu": c2 - c1,
            "end": t3 - t2}


def run(quick: bool = False) -> dict:
    n_rec, n_raw = (20_000, 1_000) if quick else (200_000, 5_000)
    with redis_server() as redis:
        url = redis.url
        bench_recorder(url, 2_000, 1)  # warm-up: imports, DataStore, Redis indexes
        rec = bench_recorder(url, n_rec, 2)
        raw = bench_raw(url, n_raw, 3)
    us = lambda r, k: r[k] / r["n"] * 1e6  # noqa: E731
    row = lambda label, k: [label, f"{us(rec, k):.2f}", f"{us(raw, k):.2f}",  # noqa: E731
                            f"{us(raw, k) / us(rec, k):.0f}x"]
    rows = [
        ["records", f"{rec['n']:,}", f"{raw['n']:,}", ""],
        row("total: start + N writes + end (us/record)", "total"),
        ["total throughput (records/s)", f"{rec['n'] / rec['total']:,.0f}",
         f"{raw['n'] / raw['total']:,.0f}", ""],
        row("scan thread: write loop, wall (us/record)", "loop"),
        row("scan thread: write loop, CPU (us/record)", "loop_cpu"),
        ["start call (ms)", f"{rec['start'] * 1e3:.1f}", f"{raw['start'] * 1e3:.1f}", ""],
        ["end call, returns once CLOSED (ms)", f"{rec['end'] * 1e3:.1f}",
         f"{raw['end'] * 1e3:.1f}", ""],
    ]
    print_table(f"Recorder cost, 11 columns (target: <= {TARGET_US:g} us/record total)",
                ["", "RedisBlissRecorder", "blissdata point by point", "raw / recorder"], rows)
    verdict = "MET" if us(rec, "total") <= TARGET_US else "MISSED"
    print(f"target <= {TARGET_US:g} us/record: {verdict} ({us(rec, 'total'):.2f} us/record)\n")
    return {"recorder": rec, "raw": raw}


if __name__ == "__main__":
    bench_main(run, __doc__)
