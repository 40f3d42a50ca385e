"""The live viewer (``sardana-redis web``): send-to-visible latency in a real headless
browser, and the server's cost with many viewers on one fast scan.

1. Latency: the recorder (RedisBlissRecorder with a fake record list) publishes points at
   10 Hz, 100 Hz and 1 kHz while a headless Chromium (Debian's) shows the scan's page; the
   page records when each batch was painted (``viewerState.draws``: the time of the
   animation frame after the batch was drawn, and the points drawn). Each point's latency
   is that time minus the time the recorder was given the point.
2. Load: 0, 1, then 20 viewers on one 1 kHz scan, which the SPEC writer (its own process)
   writes meanwhile. 20 Chromiums do not fit on 2 cores beside the server, Redis, the writer
   and the publisher, so the viewers are 20 server-sent-event clients (a separate process,
   one thread each, reading exactly what a page reads); each must receive every point. The
   server's CPU (share of one core, over the scan) and memory (peak resident set) are
   reported, and the writer's lag (record pushed -> line in the file) with each number of
   viewers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from benchmarks.bench_spec_writer import FileTail
from benchmarks.common import (
    ROOT,
    Record,
    cpu_seconds,
    new_recorder,
    pace,
    percentiles,
    print_table,
    record_data,
    redis_server,
    verdict,
)
from benchmarks.writer_side_by_side import WriterProcess, stopping
from sardana_redis.datastore import open_data_store
from tests.chromium import Chromium
from tests.web_helpers import sse_events, start_web

TARGET_P95_MS = 250.0
RATES = (10, 100, 1000)
LOAD_RATE = 1000
CLIENTS = (0, 1, 20)


def scan_page(web: str, key: str) -> str:
    return f"{web}/scan/{urllib.parse.quote(key, safe='')}"


class Publisher:
    """A scan published by the recorder at a fixed rate, its key known before the points."""

    def __init__(self, url: str, serialno: int, npoints: int, spec_file: Path | None = None
                 ) -> None:
        store = open_data_store(url, init=False)
        since = store.get_last_scan_timetag()
        self.rec, self.rl, self.macro = new_recorder(url, serialno, npoints)
        if spec_file is not None:  # requested from the SPEC writer
            self.rl.env.update(ScanDir=str(spec_file.parent), ScanFile=[spec_file.name])
            self.macro.env["ScanRecorder"] = ["RedisBlissRecorder"]
        self.npoints = npoints
        self.rec.startRecordList(self.rl)
        _, self.key = store.get_next_scan(since=since, timeout=30)
        self.sent: list[float] = []

    def run(self, rate: float) -> float:
        """Push every point at ``rate`` Hz, then end the scan; the seconds it took."""
        t0 = time.perf_counter()
        for i in range(self.npoints):
            pace(rate, t0, i)
            now = time.time()
            self.sent.append(now)
            self.rec.writeRecord(Record(record_data(i, now), i))
        self.rl.end()
        self.rec.endRecordList(self.rl)
        assert not self.macro.warnings, self.macro.warnings
        return time.perf_counter() - t0


def latencies(url: str, web: str, browser: Chromium, rate: float, duration: float,
              serialno: int) -> tuple[list[float], list[float]]:
    """Seconds from the recorder to the page (received, painted), for every point of one
    scan."""
    publisher = Publisher(url, serialno, int(rate * duration))
    browser.open(scan_page(web, publisher.key))
    browser.wait_for("viewerState.panels.length > 0", timeout=30)
    publisher.run(rate)
    browser.wait_for("viewerState.done", timeout=60)
    draws = browser.evaluate("viewerState.draws")
    received, painted, drawn = [], [], 0
    for painted_ms, rows, received_ms, _ in draws:
        for i in range(drawn, min(rows, publisher.npoints)):
            received.append(received_ms / 1e3 - publisher.sent[i])
            painted.append(painted_ms / 1e3 - publisher.sent[i])
        drawn = max(drawn, rows)
    assert drawn == publisher.npoints, f"the page drew {drawn} of {publisher.npoints} points"
    return received, painted


def clients_main(web: str, key: str, count: int) -> None:
    """Client process: ``count`` SSE viewers of one scan until it is done; prints READY
    when all are connected, then per client (messages, bytes, points of the first curve)."""
    results: list[tuple[int, int, int]] = []
    connected = threading.Semaphore(0)

    def viewer() -> None:
        messages = size = points = 0
        first = None
        for event, data in sse_events(f"{web}/events/scan/{urllib.parse.quote(key, safe='')}",
                                      timeout=120):
            if event != "scan":
                continue
            messages += 1
            size += len(json.dumps(data))
            if messages == 1:
                connected.release()
            if data.get("panels"):
                first = data["panels"][0]["streams"][0]
            values = data["series"]["values"].get(first, [])
            points = len(values) if data["series"]["reset"] else points + len(values)
            if data["done"]:
                break
        results.append((messages, size, points))

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in threads:
        connected.acquire()
    print("READY", flush=True)
    for thread in threads:
        thread.join(180)
    print(json.dumps(results), flush=True)


def peak_memory(pid: int) -> int:
    """Peak resident set of process ``pid`` so far (bytes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines()
                    if line.startswith("VmHWM")).split()[1]) * 1024


def load(url: str, web: str, server_pid: int, clients: int, duration: float, serialno: int,
         root: Path) -> dict:
    """``clients`` SSE viewers on one scan at LOAD_RATE, written by the running SPEC writer
    into ``root``: the server's CPU and memory, the writer's lag."""
    spec_file = root / f"load_{clients}.dat"
    tail = FileTail(spec_file)
    tail.start()
    publisher = Publisher(url, serialno, int(LOAD_RATE * duration), spec_file)
    proc = None
    try:
        if clients:
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_web", "--clients",
                                     str(clients), web, publisher.key], stdout=subprocess.PIPE,
                                    text=True, cwd=ROOT)
            assert proc.stdout.readline().strip() == "READY"
        cpu0 = cpu_seconds(server_pid)
        elapsed = publisher.run(LOAD_RATE)
        out, _ = proc.communicate(timeout=180) if proc else ("[]", None)
        cpu = (cpu_seconds(server_pid) - cpu0) / elapsed
        assert tail.finished.wait(60), f"{spec_file}: no end of scan after 60 s"
    finally:
        tail.stop.set()
        tail.join()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(tail.lags) == publisher.npoints, f"{spec_file}: {len(tail.lags)} lines"
    results = json.loads(out.splitlines()[-1])
    assert len(results) == clients, results
    assert all(points == publisher.npoints for _, _, points in results), \
        f"a viewer missed points: {results}"
    return {"cpu": cpu, "peak": peak_memory(server_pid), "lag": percentiles(tail.lags),
            "messages": sum(m for m, _, _ in results) / max(clients, 1),
            "bytes": sum(b for _, b, _ in results) / max(clients, 1)}


def run(quick: bool = False) -> None:
    duration = 2.0 if quick else 5.0
    load_duration = 3.0 if quick else 10.0
    with redis_server() as redis, tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        service, web = start_web(redis.url, Path(tmp) / "web.log")
        web = web.rstrip("/")
        try:
            rows, worst, serialno = [], 0.0, 1
            with Chromium() as browser:
                for rate in RATES:
                    received, painted = latencies(redis.url, web, browser, rate, duration,
                                                  serialno)
                    serialno += 1
                    r50, r95, _ = percentiles(received)
                    p50, p95, top = percentiles(painted)
                    worst = max(worst, p95)
                    rows.append([f"{rate:g} Hz", len(painted),
                                 *(f"{v * 1e3:.0f}" for v in (r50, r95, p50, p95, top))])
            print_table(f"Send-to-visible latency in a headless Chromium, ms (recorder -> "
                        f"Redis -> sardana-redis web -> page painted; {duration:g} s per "
                        f"rate; target p95 <= {TARGET_P95_MS:g} ms)",
                        ["rate", "points", "received p50", "p95", "painted p50", "p95", "max"],
                        rows)
            print(f"target p95 <= {TARGET_P95_MS:g} ms: {verdict(worst * 1e3 <= TARGET_P95_MS)}"
                  f" (worst p95 {worst * 1e3:.0f} ms)\n")
            rows = []
            root = Path(tmp) / "scans"
            root.mkdir()
            with stopping(WriterProcess("spec-writer", redis.url, root, "bench-web",
                                        Path(tmp) / "spec-writer.log")) as writer:
                writer.start()
                for clients in CLIENTS:
                    result = load(redis.url, web, service.process.pid, clients, load_duration,
                                  serialno, root)
                    serialno += 1
                    rows.append([clients, f"{result['cpu']:.0%}",
                                 f"{result['peak'] / 2**20:.0f}", f"{result['messages']:.0f}",
                                 f"{result['bytes'] / 2**10:.0f}",
                                 *(f"{v * 1e3:.0f}" for v in result["lag"][:2])])
            print_table(f"The server with viewers on one {LOAD_RATE} Hz scan ({load_duration:g}"
                        f" s, 11 columns; each viewer an SSE client getting every point), and "
                        "the SPEC writer's lag on the same scan",
                        ["viewers", "server CPU (one core)", "server peak RSS (MiB)",
                         "batches per viewer", "kB per viewer", "writer lag p50 (ms)", "p95"],
                        rows)
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("target", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        clients_main(*args.target, args.clients)
    else:
        run(args.quick)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
