"""What the two writer benchmarks (``bench_spec_writer``, ``bench_nexus_writer``) share.

Writers followed through their ledger (in process, or as a ``sardana-redis spec-writer`` /
``nexus-writer`` process), and the side by side in a local Sardana: a scan's ``ScanFile``
written (a) by one of Sardana's own recorders inside the MacroServer, (b) by
RedisBlissRecorder (``ScanRecorder``) + the writer process; a and b alternate. Macro wall
time, CPU of Sardana, of the writer and of Redis, and the time from the end of the macro
until the file is complete (the writer's done record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import redis
from blissdata.redis_engine.store import DataStore

from benchmarks.common import cpu_seconds, print_table
from sardana_redis.following.follower import ScanFollower
from sardana_redis.following.ledger import DoneRecord, WriterLedger
from sardana_redis.local_stack.process import log_tail, terminate_process_group
from sardana_redis.redis_url import normalize_redis_url

P = TypeVar("P", bound="LoggedProcess")


# --- writers and their ledgers --------------------------------------------------------------

def writer_ledger(url: str, name: str) -> WriterLedger:
    return WriterLedger(redis.Redis.from_url(normalize_redis_url(url)), name)


def ledger_from_now(url: str, name: str) -> WriterLedger:
    """The ledger of writer ``name``, its cursor set to now: it will write every later scan."""
    ledger = writer_ledger(url, name)
    ledger.set_cursor(DataStore(normalize_redis_url(url)).get_last_scan_timetag())
    return ledger


def wait_done(ledger: WriterLedger, key: str, timeout: float, poll: float = 0.002) -> DoneRecord:
    deadline = time.monotonic() + timeout
    while (record := ledger.done(key)) is None:
        assert time.monotonic() < deadline, f"writer {ledger.name} did not finish {key}"
        time.sleep(poll)
    assert record.status == "written", record
    return record


def follow_in_process(url: str, name: str, writer: Any, key: str,
                      timeout: float) -> dict[str, float]:
    """A ScanFollower + ``writer`` started once scan ``key`` is complete in Redis (the cursor
    of writer ``name`` was set before it was published), timed until the scan's done record:
    seconds, CPU of this process, points."""
    ledger = writer_ledger(url, name)
    follower = ScanFollower(url, name, writer)
    c0, t0 = time.process_time(), time.perf_counter()
    follower.start()
    try:
        record = wait_done(ledger, key, timeout=timeout)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        follower.stop()
    return {"seconds": elapsed, "cpu": cpu, "points": record.points}


class LoggedProcess:
    """A command in its own process group, its output appended to ``log_file``; started once
    its log shows ``ready``."""

    poll = 0.005

    def __init__(self, cmd: list[str], log_file: Path, ready: str, label: str) -> None:
        self.cmd = cmd
        self.log_file = log_file
        self.ready = ready
        self.label = label
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start; returns the seconds until its log shows ``ready``."""
        t0 = time.perf_counter()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while self.ready not in log_tail(self.log_file, 20000):
            assert self.proc.poll() is None, log_tail(self.log_file)
            assert time.monotonic() < deadline, log_tail(self.log_file)
            time.sleep(self.poll)
        return time.perf_counter() - t0

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

    def stop(self) -> None:
        if self.proc is not None:
            terminate_process_group(self.proc, self.label)


class WriterProcess(LoggedProcess):
    """``sardana-redis <command>`` (``spec-writer``, ``nexus-writer``) writing below ``root``
    as writer ``name``; no traceback may be in its log when it is stopped."""

    def __init__(self, command: str, url: str, root: Path, name: str, log_file: Path) -> None:
        super().__init__([sys.executable, "-m", "sardana_redis", "--log-level", "INFO", command,
                          "--redis-url", url, "--root", str(root), "--name", name],
                         log_file, "Waiting for scan", command)
        self.name = name

    def stop(self) -> None:
        super().stop()
        assert "Traceback" not in log_tail(self.log_file, 100000), log_tail(self.log_file)


@contextlib.contextmanager
def stopping(proc: P) -> Iterator[P]:
    try:
        yield proc
    finally:
        proc.stop()


# --- beside Sardana's own recorder ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SideBySide:
    """A side by side: ``scan`` (macro and parameters; the 4th parameter, the intervals, is
    set by the run) with ``ScanFile=[scan_file]``, written (a) by Sardana's ``recorder``, (b)
    by ``sardana-redis <command>``. ``check(path, scan number, points)`` asserts that a file
    is complete and returns None or a dict describing it, which must be the same for (a) and
    (b) and is printed. ``mg``: a measurement group (name, channels) defined and made active
    for the scans (else the demo's default one). ``cpu_label``: Sardana's CPU in the table."""

    recorder: str
    writer: str
    command: str
    scan_file: str
    check: Callable[[Path, int, int], dict[str, Any] | None]
    session: str
    scan: tuple
    mg: tuple[str, list[str]] | None = None
    cpu_label: str = "Sardana CPU"
    #: when set, one more scan of these intervals in each configuration, into a new file
    #: (``small_<scan_file>``), whose sizes are compared
    small_intervals: int | None = None

    @property
    def configs(self) -> dict[str, str]:
        return {"a": f"{self.recorder} (in the MacroServer)",
                "b": f"RedisBlissRecorder + {self.writer}"}

    def macro(self, intervals: int) -> tuple[str, list]:
        macro, *params = self.scan
        params[3] = intervals
        return macro, params


def run_side_by_side(side: SideBySide, url: str, redis_pid: int, workdir: Path, rounds: int,
                     intervals: int) -> dict[str, list]:
    """A warm-up scan of 10 intervals in (a) and (b), not timed, then ``rounds`` x (a, b);
    the runs of each configuration."""
    from benchmarks.bench_scan_overhead import sardana

    macro, params = side.macro(intervals)
    dirs = {c: workdir / f"scans_{c}" for c in side.configs}
    for d in dirs.values():
        d.mkdir()
    store = DataStore(normalize_redis_url(url))
    ledger = writer_ledger(url, side.session)
    res: dict[str, list] = {c: [] for c in side.configs}
    writer = WriterProcess(side.command, url, dirs["b"], ledger.name,
                           workdir / f"{side.command}.log")
    with sardana(workdir) as (door, server), stopping(writer):
        writer.start()
        env: dict[str, Any] = {}
        if side.mg is not None:
            mg, channels = side.mg
            result = door.run("defmeas", mg, channels)
            assert result.ok, (result.status, result.error)
            env["ActiveMntGrp"] = mg

        def configure(config: str, scan_file: str) -> None:
            recorder = side.recorder if config == "a" else "RedisBlissRecorder"
            door.set_env(RedisURL=url, RedisSession=side.session, ScanDir=str(dirs[config]),
                         ScanFile=[scan_file], ScanRecorder=[recorder], DataRecorder=[],
                         **env)

        def one_scan(config: str, scan_params: list, scan_file: str = side.scan_file) -> dict[str, Any]:
            configure(config, scan_file)
            npoints = int(scan_params[3]) + 1
            cpu0 = (cpu_seconds(server.pid), writer.cpu(), cpu_seconds(redis_pid))
            t0 = time.perf_counter()
            run = door.start(macro, *scan_params)
            while not run.done():
                time.sleep(0.002)
            t1, t1_wall = time.perf_counter(), time.time()
            sardana_cpu = cpu_seconds(server.pid) - cpu0[0]
            result = run.wait()
            assert result.ok, (result.status, result.error)
            assert not [w for w in result.warning if "Redis" in w], result.warning
            number = int(door.get_env("ScanID"))
            out = {"wall": t1 - t0, "cpu": sardana_cpu, "number": number, "file": 0.0,
                   "writer_cpu": 0.0}
            if config == "b":
                _, keys = store.search_existing_scans(session=side.session, number=number)
                assert len(keys) == 1, keys
                done = wait_done(ledger, keys[0], timeout=60)
                assert done.points == npoints, done
                out["file"] = done.time - t1_wall  # the writer's clock when it marked it done
                out["writer_cpu"] = writer.cpu() - cpu0[1]
            out["redis_cpu"] = cpu_seconds(redis_pid) - cpu0[2]
            out["checked"] = side.check(dirs[config] / scan_file, number, npoints)
            out["size"] = (dirs[config] / scan_file).stat().st_size  # every scan so far
            return out

        warm = [params[0], params[1], 1, 10, params[4]]
        for config in side.configs:  # warm-up, not timed
            one_scan(config, warm)
        for _ in range(rounds):
            for config in side.configs:
                res[config].append(one_scan(config, params))
        if side.small_intervals is not None:
            small = [params[0], params[1], 1, side.small_intervals, params[4]]
            for config in side.configs:
                res[config][0]["small_size"] = one_scan(config, small, f"small_{side.scan_file}")["size"]
    checked = {c: runs[0]["checked"] for c, runs in res.items()}
    assert checked["a"] == checked["b"], f"the two files differ: {checked}"
    return res


def report_side_by_side(side: SideBySide, sar: dict[str, list], intervals: int) -> None:
    """The medians of each configuration, every run's wall time and file delay."""
    med = {c: {k: statistics.median(r[k] for r in runs) for k in runs[0]
               if k not in ("checked", "small_size")} for c, runs in sar.items()}
    rows = [[f"({c}) {label}", f"{med[c]['wall']:.3f}",
             " ".join(f"{r['wall']:.2f}" for r in sar[c]), f"{med[c]['cpu']:.2f}",
             f"{med[c]['writer_cpu']:.2f}" if c == "b" else "", f"{med[c]['redis_cpu']:.2f}",
             f"{med[c]['file'] * 1e3:.0f}" if c == "b" else "0 (written in the scan)"]
            for c, label in side.configs.items()]
    macro, params = side.macro(intervals)
    channels = f", {' '.join(side.mg[1])}" if side.mg is not None else ""
    print_table(f"{macro} {' '.join(map(str, params))} ({intervals + 1} points{channels}), "
                f"{len(sar['a'])} round(s), medians",
                ["configuration", "macro wall (s)", "runs (s)", f"{side.cpu_label} (s)",
                 "writer CPU (s)", "Redis CPU (s)", "file complete after the macro (ms)"], rows)
    files = " ".join(f"{r['file'] * 1e3:.0f}" for r in sar["b"])
    both = sar["a"][0]["checked"]
    both = f"; both files: {', '.join(f'{k} {v}' for k, v in sorted(both.items()))}" if both \
        else ""
    print(f"(b) - (a): wall {(med['b']['wall'] - med['a']['wall']) * 1e3:+.0f} ms, "
          f"{side.cpu_label} {(med['b']['cpu'] - med['a']['cpu']) * 1e3:+.0f} ms; (b) file "
          f"complete after the macro, each run: {files} ms{both}")
    size = {c: runs[-1]["size"] for c, runs in sar.items()}
    print(f"file sizes, every scan above (warm-up included): (a) {size['a'] / 1e3:,.0f} kB, "
          f"(b) {size['b'] / 1e3:,.0f} kB, (b)/(a) {size['b'] / size['a']:.2f}")
    if "small_size" in sar["a"][0]:
        small = {c: runs[0]["small_size"] for c, runs in sar.items()}
        print(f"file sizes, one scan of {side.small_intervals + 1} points in a new file: "
              f"(a) {small['a'] / 1e3:,.1f} kB, (b) {small['b'] / 1e3:,.1f} kB, "
              f"(b)/(a) {small['b'] / small['a']:.2f}")
    print()
