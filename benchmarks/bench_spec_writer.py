"""The SPEC writer: Redis -> file throughput, live lag, and beside Sardana's SPEC_FileRecorder.

1. Throughput: a complete scan is published straight into Redis with blissdata
   (big chunks, before any writer runs), then a writer is started and timed
   until its done record: the in-process ``ScanFollower`` + ``SpecScanWriter``
   (500,000 points of #Pt No, mot01, ct01-ct08, dt; then 1D spectra of 1024
   float64 with #Pt No and mot01; best of 2), and the real ``sardana-redis
   spec-writer`` process once (scalars). Every file is checked (data and @A
   lines). The formatter alone (``spec_format.data_lines``) is timed too.
2. Lag: with the writer process running, records are pushed through the
   RedisBlissRecorder (fake record list, its own 30 ms flush) at 100 Hz and
   1 kHz; the ``dt`` column carries ``time.time()`` at push time, and a thread
   tailing the SPEC file takes now - dt for every data line as it appears.
3. Side by side: ``ascan mot01 0 10 250 0.001`` in a local Sardana, its
   ``ScanFile=['sardana.dat']`` written (a) by Sardana's SPEC_FileRecorder
   inside the MacroServer, (b) by the SPEC writer process (the entry routed to
   RedisBlissRecorder with ``ScanRecorder``); a and b alternate. Macro wall
   time, CPU of Sardana, of the writer and of Redis, and the time from the end
   of the macro until the file is complete (the writer's done record).
"""

from __future__ import annotations

import datetime
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from benchmarks.common import (COUNTERS, MOTOR, SESSION, bench_main, new_recorder, percentiles,
                               print_table, push_records, redis_server, verdict)
from benchmarks.writer_side_by_side import (SideBySide, WriterProcess, follow_in_process,
                                            ledger_from_now, report_side_by_side,
                                            run_side_by_side, stopping, wait_done)
from sardana_redis.redis_url import normalize_redis_url
from sardana_redis.spec_writer import number_text, spec_format, writer as writer_module
from sardana_redis.spec_writer.spec_format import SpecLayout
from sardana_redis.spec_writer.writer import SpecScanWriter

TARGET_POINTS_S = 500_000
TARGET_SPECTRA_S = 20_000
TARGET_LAG_P95_MS = 200.0
RATES = (100, 1000)
SPECTRUM = 1024
#: The scalar streams, in file order: name, dtype.
SCALARS = [("#Pt No", "int64"), (MOTOR, "float64"), *((label, "float64") for _, label in COUNTERS),
           ("dt", "float64")]


# --- publishing and checking -----------------------------------------------------------

def scalar_chunk(start: int, stop: int) -> dict[str, np.ndarray]:
    """Points start..stop-1 of every scalar stream (the values of ``record_data``; dt: a
    time stamp)."""
    i = np.arange(start, stop)
    chunk = {"#Pt No": i, MOTOR: i * 0.01, "dt": 1.7e9 + i * 1e-3}
    for k, (_, label) in enumerate(COUNTERS):
        chunk[label] = (i + k).astype("float64")
    return chunk


def publish_scan(url: str, number: int, path: Path, npoints: int, chunk: int,
                 spectra: bool = False) -> str:
    """A complete scan, ``chunk`` points per ``send``; returns its key. ``spectra``: #Pt No,
    mot01 and a 1024-point float64 channel (integral counts) instead of the 11 scalars."""
    store = DataStore(normalize_redis_url(url))
    info = {"title": f"ascan mot01 0 10 {npoints - 1} 0.01", "user_name": "bench",
            "start_time": datetime.datetime.now().astimezone().isoformat(),
            "sardana": {"requested_files": [{"path": str(path), "format": "spec"}]}}
    scan = store.create_scan({"name": "ascan", "number": number, "data_policy": "no_policy",
                              "session": SESSION}, info=info)
    defs = SCALARS[:2] if spectra else SCALARS
    streams = {name: scan.create_stream(Stream.make_definition(name, dtype, ()))
               for name, dtype in defs}
    if spectra:
        streams["oned01"] = scan.create_stream(
            Stream.make_definition("oned01", "float64", (SPECTRUM,)))
    scan.prepare()
    scan.start()
    rng = np.random.default_rng(number)
    for start in range(0, npoints, chunk):
        stop = min(start + chunk, npoints)
        values = scalar_chunk(start, stop)
        if spectra:
            values["oned01"] = rng.poisson(1000.0, (stop - start, SPECTRUM)).astype("float64")
        for name, stream in streams.items():
            stream.send(values[name])
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    return scan.key


def spec_lines(path: Path, number: int | None = None) -> tuple[int, int]:
    """(data lines, @A lines) of scan ``number`` in a SPEC file (every scan when None)."""
    data = mca = 0
    inside = number is None
    with open(path) as f:
        for line in f:
            if line.startswith("#S "):
                inside = number is None or line.split()[1] == str(number)
            elif not inside or line.startswith("#") or not line.strip():
                continue
            elif line.startswith("@A"):
                mca += 1
            else:
                data += 1
    return data, mca


def check_file(path: Path, number: int | None, npoints: int, nspectra: int = 0) -> None:
    data, mca = spec_lines(path, number)
    assert (data, mca) == (npoints, nspectra), \
        f"{path} scan {number}: {data} data / {mca} @A lines, expected {npoints} / {nspectra}"


class FormatTimer:
    """Wraps the writer's ``data_lines`` to add up the time spent formatting."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._original = writer_module.data_lines

    def __call__(self, layout: SpecLayout, batch: Any) -> str:
        t0 = time.perf_counter()
        try:
            return self._original(layout, batch)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __enter__(self) -> "FormatTimer":
        writer_module.data_lines = self
        return self

    def __exit__(self, *exc: object) -> None:
        writer_module.data_lines = self._original


# --- writers -----------------------------------------------------------------------------

def write_in_process(url: str, root: Path, name: str, key: str) -> dict[str, float]:
    """Start a ScanFollower + SpecScanWriter (the scan is already complete in Redis) and time
    it until the scan's done record. Also: time inside ``data_lines``, process CPU."""
    with FormatTimer() as fmt:
        run = follow_in_process(url, name, SpecScanWriter([root]), key, timeout=600)
    return {**run, "format": fmt.seconds, "batches": fmt.calls}


# --- 1. throughput -------------------------------------------------------------------------

def bench_formatter(npoints: int) -> dict[str, float]:
    """``data_lines`` alone on one batch: the 11 scalars with the values above, then with the
    8 counters random floats (17 significant digits), then 1D spectra."""
    layout = SpecLayout(1, "t", "u", datetime.datetime.now(), tuple((n, n) for n, _ in SCALARS))
    batch = scalar_chunk(0, npoints)
    out = {}
    t0 = time.perf_counter()
    spec_format.data_lines(layout, batch)
    out["scalars"] = npoints / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    for _, label in COUNTERS:
        batch[label] = rng.random(npoints) * 1e4
    t0 = time.perf_counter()
    spec_format.data_lines(layout, batch)
    out["random"] = npoints / (time.perf_counter() - t0)
    nspectra = npoints // 100
    layout = SpecLayout(1, "t", "u", datetime.datetime.now(), (("#Pt No", "Pt_No"),),
                        mca=(("oned01", "oned01", SPECTRUM),))
    batch = {"#Pt No": np.arange(nspectra),
             "oned01": rng.poisson(1000.0, (nspectra, SPECTRUM)).astype("float64")}
    t0 = time.perf_counter()
    spec_format.data_lines(layout, batch)
    out["spectra"] = nspectra / (time.perf_counter() - t0)
    return out


def number_values(n: int) -> dict[str, np.ndarray]:
    """Columns of ``n`` values: what detectors give, and the hard cases."""
    rng = np.random.default_rng(1)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 2.2e-308, 1.7e308])
    return {
        "float64 random (17 digits)": rng.random(n) * 1e4,
        "float64 counts (integral)": rng.poisson(1000.0, n).astype("float64"),
        "float64 any magnitude (1e-40..1e40)": rng.normal(size=n) * 10.0 ** rng.uniform(-40, 40, n),
        "float64 with subnormals, -0.0, nan, inf (1 in 8)": np.where(
            rng.random(n) < 0.125, rng.choice(special, n), rng.random(n)),
        "float32 random": (rng.random(n) * 1e4).astype("float32"),
    }


def bench_number_text(n: int) -> list[list[str]]:
    """``number_text.column_text`` against ``str``/``repr`` one by one (what Sardana's
    SPEC_FileRecorder does): ns per value, and the text compared value for value."""
    rows = []
    for name, values in number_values(n).items():
        one = (lambda v=values: list(map(repr, v.tolist()))) if values.dtype == np.float64 \
            else (lambda v=values: [str(x) for x in v])
        t0 = time.perf_counter()
        expected = one()
        slow = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = number_text.column_text(values)
        fast = time.perf_counter() - t0
        rows.append([name, f"{slow / n * 1e9:.0f}", f"{fast / n * 1e9:.0f}", f"{slow / fast:.1f}x",
                     "identical" if got == expected else
                     f"{sum(a != b for a, b in zip(got, expected))} differ"])
    return rows


def best_in_process(url: str, root: Path, name: str, path: Path, number: int, npoints: int,
                    spectra: bool, repeats: int) -> dict[str, float]:
    """Publish one complete scan, then write it ``repeats`` times in process (a fresh writer
    name each time, the file removed in between); the fastest run, with all the times."""
    for k in range(repeats):  # every writer must see the scan: cursors set before it exists
        ledger_from_now(url, f"{name}-{k}")
    t0 = time.perf_counter()
    key = publish_scan(url, number, path, npoints, chunk=10 if spectra else 1000, spectra=spectra)
    publish = time.perf_counter() - t0
    runs = []
    for k in range(repeats):
        path.unlink(missing_ok=True)
        runs.append(write_in_process(url, root, f"{name}-{k}", key))
        check_file(path, number, npoints, npoints if spectra else 0)
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "runs": [r["seconds"] for r in runs], "publish": publish,
            "size_mb": path.stat().st_size / 1e6}


def bench_throughput(url: str, root: Path, npoints: int, nspectra: int, repeats: int,
                     proc: WriterProcess) -> dict[str, Any]:
    """In process: scalars, then spectra (best of ``repeats``); then ``proc``, the command-line
    service, started once its scan is complete (it is left running)."""
    res: dict[str, Any] = {"npoints": npoints, "nspectra": nspectra}
    res["scalars"] = best_in_process(url, root, "bench-scalars", root / "scalars.dat", 1,
                                     npoints, False, repeats)
    res["spectra"] = best_in_process(url, root, "bench-spectra", root / "spectra.dat", 2,
                                     nspectra, True, repeats)
    ledger = ledger_from_now(url, proc.name)
    path = root / "cli.dat"
    key = publish_scan(url, 3, path, npoints, chunk=1000)
    ready = proc.start()
    t0, cpu0 = time.perf_counter(), proc.cpu()
    wait_done(ledger, key, timeout=600)
    res["cli"] = {"seconds": time.perf_counter() - t0, "startup": ready,
                  "cpu": proc.cpu() - cpu0, "rss": proc.peak_rss_mb()}
    check_file(path, 3, npoints)
    return res


# --- 2. lag --------------------------------------------------------------------------------

class FileTail(threading.Thread):
    """Tails a SPEC file: for each new data line, now - its last column (dt, a time.time())."""

    def __init__(self, path: Path, poll: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.poll = poll
        self.lags: list[float] = []
        self.finished = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.path.exists():
            if self.stop.wait(self.poll):
                return
        pending = ""
        with open(self.path) as f:
            while not self.stop.is_set():
                chunk = f.read()
                now = time.time()
                if not chunk:
                    time.sleep(self.poll)
                    continue
                lines = (pending + chunk).split("\n")
                pending = lines.pop()
                for line in lines:
                    if line.startswith("#C End reason"):
                        self.finished.set()
                        return
                    if line and not line.startswith(("#", "@A")):
                        self.lags.append(now - float(line.rsplit(" ", 1)[1]))


def bench_lag(url: str, root: Path, rate: float, duration: float, serialno: int) -> dict[str, Any]:
    """Push ``rate * duration`` records through the recorder with the writer process running;
    lags seen by a thread tailing the file."""
    n = int(rate * duration)
    path = root / f"lag_{rate:g}Hz.dat"
    tail = FileTail(path)
    tail.start()
    rec, rl, macro = new_recorder(url, serialno, n)
    rl.env.update(ScanDir=str(root), ScanFile=[path.name])
    macro.env["ScanRecorder"] = ["RedisBlissRecorder"]
    try:
        push_records(rec, rl, macro, rate, n)
        assert tail.finished.wait(30), f"{path}: no end of scan after 30 s"
    finally:
        tail.stop.set()
        tail.join()
    assert len(tail.lags) == n, f"{path}: {len(tail.lags)} of {n} lines seen"
    check_file(path, serialno, n)
    return {"n": n, "lag": percentiles(tail.lags)}


# --- 3. beside Sardana's SPEC_FileRecorder ---------------------------------------------------

SIDE_BY_SIDE = SideBySide(
    recorder="SPEC_FileRecorder", writer="SPEC writer", command="spec-writer",
    scan_file="sardana.dat", check=check_file, session="bench-sardana",  # numbers restart at 1
    scan=("ascan", "mot01", 0, 10, 250, 0.001))


# --- tables --------------------------------------------------------------------------------

def report(thr: dict[str, Any], fmt: dict[str, float], lags: dict[float, dict],
           sar: dict[str, list], intervals: int) -> None:
    n, ns = thr["npoints"], thr["nspectra"]
    sc, sp, cli = thr["scalars"], thr["spectra"], thr["cli"]
    runs = lambda r: " ".join(f"{t:.2f}" for t in r["runs"])  # noqa: E731
    rows = [
        [f"in-process, {n:,} points x 11 scalars", f"{sc['seconds']:.2f}", runs(sc),
         f"{n / sc['seconds']:,.0f} points/s", f"{sc['format'] / sc['seconds']:.0%}",
         f"{sc['cpu']:.2f}", sc["batches"]],
        [f"in-process, {ns:,} spectra x 1024 (+ 2 scalars)", f"{sp['seconds']:.2f}", runs(sp),
         f"{ns / sp['seconds']:,.0f} spectra/s", f"{sp['format'] / sp['seconds']:.0%}",
         f"{sp['cpu']:.2f}", sp["batches"]],
        [f"sardana-redis spec-writer process, {n:,} points", f"{cli['seconds']:.2f}", "",
         f"{n / cli['seconds']:,.0f} points/s", "", f"{cli['cpu']:.2f}", ""],
    ]
    print_table(f"Throughput Redis -> file: scan complete in Redis before the writer starts; "
                f"timed from start until the done record, best of {len(sc['runs'])} "
                f"(targets: >= {TARGET_POINTS_S:,} points/s, >= {TARGET_SPECTRA_S:,} spectra/s)",
                ["writer, scan", "seconds", "runs (s)", "throughput", "in data_lines",
                 "CPU (s)", "batches"], rows)
    print(f"scalars: file {sc['size_mb']:.1f} MB, published in {sc['publish']:.2f} s; the "
          f"process: {cli['startup']:.2f} s from spawn to 'Waiting for scan' (not counted), "
          f"peak RSS {cli['rss']:.0f} MB")
    print(f"data_lines alone: {fmt['scalars']:,.0f} points/s (values above), "
          f"{fmt['random']:,.0f} points/s (counters random floats), "
          f"{fmt['spectra']:,.0f} spectra/s")
    print_table("Number text: orjson where its text is Python's (number_text.column_text) "
                "against str/repr one by one (SPEC_FileRecorder's str(value))",
                ["values", "str/repr (ns/value)", "column_text (ns/value)", "speed-up", "text"],
                thr["number_text"])
    print(f"target >= {TARGET_POINTS_S:,} points/s: "
          f"{verdict(n / sc['seconds'] >= TARGET_POINTS_S)}; target >= {TARGET_SPECTRA_S:,} "
          f"spectra/s: {verdict(ns / sp['seconds'] >= TARGET_SPECTRA_S)}\n")
    ms = lambda v: f"{v * 1e3:.1f}"  # noqa: E731
    print_table("Lag, record pushed (RedisBlissRecorder, 30 ms flush) -> its line in the SPEC "
                f"file (writer process running; target p95 <= {TARGET_LAG_P95_MS:g} ms)",
                ["rate", "points", "p50 (ms)", "p95", "max"],
                [[f"{rate:g} Hz", r["n"], *map(ms, r["lag"])] for rate, r in lags.items()])
    worst = max(r["lag"][1] for r in lags.values()) * 1e3
    print(f"target p95 <= {TARGET_LAG_P95_MS:g} ms: {verdict(worst <= TARGET_LAG_P95_MS)} "
          f"(worst p95 {worst:.1f} ms)\n")
    report_side_by_side(SIDE_BY_SIDE, sar, intervals)


def run(quick: bool = False, rounds: int | None = None) -> dict:
    npoints, nspectra = (50_000, 500) if quick else (500_000, 5_000)
    duration = 1.0 if quick else 3.0
    rounds = rounds or (1 if quick else 3)
    intervals = 100 if quick else SIDE_BY_SIDE.scan[4]
    repeats = 1 if quick else 2
    fmt = bench_formatter(20_000 if quick else 100_000)
    lags = {}
    with redis_server() as redis_srv, tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        root = Path(tmp)
        with stopping(WriterProcess("spec-writer", redis_srv.url, root, "bench-cli",
                                    root / "spec-writer.log")) as proc:
            thr = bench_throughput(redis_srv.url, root, npoints, nspectra, repeats, proc)
            thr["number_text"] = bench_number_text(20_000 if quick else 200_000)
            for k, rate in enumerate(RATES):  # the same writer process, still running
                lags[rate] = bench_lag(redis_srv.url, root, rate, duration, 10 + k)
        workdir = root / "sardana"
        workdir.mkdir()
        sar = run_side_by_side(SIDE_BY_SIDE, redis_srv.url, redis_srv.process.pid, workdir,
                               rounds, intervals)
    report(thr, fmt, lags, sar, intervals)
    return {"throughput": thr, "format": fmt, "lag": lags, "sardana": sar}


if __name__ == "__main__":
    bench_main(run, __doc__, rounds=True)
