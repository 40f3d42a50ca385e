"""Overhead of RedisBlissRecorder on a real Sardana continuous scan.

Local Tango database + Sardana (sar_demo, fast motors) + throwaway Redis Stack, and a
Redis managed by Sentinel (a primary, 1 replica, 3 sentinels).
``ascanct mot01 0 10 1000 0.01`` on mntgrp01 with (a) no recorder, (b)
RedisBlissRecorder only, (c) Sardana's SPEC_FileRecorder only, (d) RedisBlissRecorder
with the Sentinel URL (the publisher WAITs for the replica before it forgets the scan);
a/b/c/d alternate for R rounds. Wall time is measured from the client: RunMacro until
the Door leaves RUNNING (b includes waiting until the scan is closed in Redis);
and the CPU time the Sardana process (and the Redis server) used meanwhile,
which other load on the machine disturbs less than the wall time.
Every (b) scan is read back from Redis and must hold all its points in its 7
streams (#Pt No, mot01, ct01-04 of mntgrp01, dt); every (c) file too.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (SESSION, bench_main, check_published, cpu_seconds, print_table,
                               redis_ha, redis_server)
from sardana_redis.local_stack.door import DoorClient
from sardana_redis.local_stack.sardana_server import MACRO_PATH, RECORDER_PATH, SardanaServer
from sardana_redis.local_stack.tango_db import TangoDatabase

CONFIGS = {
    "a": "no recorder",
    "b": "RedisBlissRecorder",
    "c": "SPEC_FileRecorder",
    "d": "RedisBlissRecorder, Sentinel + replica",
}
TARGET_PCT = 2.0


@contextlib.contextmanager
def sardana(workdir: Path):
    """Tango DB + Sardana + a Door client with the demo elements; TANGO_HOST restored after.

    Yields (door client, Sardana server)."""
    old = os.environ.get("TANGO_HOST")
    try:
        with TangoDatabase(workdir / "tango") as db:
            os.environ["TANGO_HOST"] = db.tango_host
            with SardanaServer(db.tango_host, workdir / "sardana", recorder_path=[RECORDER_PATH],
                               macro_path=[MACRO_PATH]) as server:
                import taurus

                taurus.setLogLevel(taurus.Error)  # no "epics scheme not available" warning
                door = DoorClient(server.door_name)
                try:
                    door.setup_demo()
                    yield door, server
                finally:
                    door.close()
    finally:
        if old is None:
            os.environ.pop("TANGO_HOST", None)
        else:
            os.environ["TANGO_HOST"] = old


def configure(door: DoorClient, config: str, url: str, scan_dir: Path) -> None:
    door.set_env(RedisURL=url, RedisSession=SESSION, ScanDir=str(scan_dir),
                 DataRecorder=["RedisBlissRecorder"] if config in ("b", "d") else [],
                 ScanFile=["x.dat"] if config == "c" else [])


def timed_scan(door: DoorClient, params: list, pids: tuple[int, int]) -> tuple[float, ...]:
    """Run ascanct. Returns: seconds from RunMacro until the Door is no longer RUNNING; the
    part between Sardana's ``startts`` and ``endts`` (scan proper, startRecordList included,
    endRecordList not); the CPU seconds of the Sardana process and of the Redis server."""
    last = _last_history(door)
    cpu0 = [cpu_seconds(pid) for pid in pids]
    t0 = time.perf_counter()
    run = door.start("ascanct", *params)
    while not run.done():
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    cpu = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0)]
    result = run.wait()
    assert result.ok, (result.status, result.error)
    assert not [w for w in result.warning if "RedisBlissRecorder" in w], result.warning
    deadline = time.monotonic() + 10
    while (history := _last_history(door)) == last:  # the client cache updates by events
        assert time.monotonic() < deadline, "ScanHistory not updated"
        time.sleep(0.05)
    return elapsed, history["endts"] - history["startts"], cpu[0], cpu[1]


def _last_history(door: DoorClient) -> dict | None:
    try:
        return door.get_env("ScanHistory")[-1]
    except (KeyError, IndexError):
        return None


def run(quick: bool = False, rounds: int | None = None) -> dict:
    intervals = 200 if quick else 1000
    rounds = rounds or (1 if quick else 3)
    params = ["mot01", 0, 10, intervals, 0.01]
    res: dict[str, list[tuple[float, ...]]] = {c: [] for c in CONFIGS}
    with (tempfile.TemporaryDirectory(prefix="bench-sardana-") as tmp, redis_server() as redis,
          redis_ha() as ha):
        workdir = Path(tmp)
        scan_dir = workdir / "scans"
        scan_dir.mkdir()
        with sardana(workdir) as (door, server):
            urls = {"d": ha.url}
            pids = {"d": (server.pid, ha.primary().process.pid)}
            door.remove_env("ScanRecorder")
            door.run("ascanct", "mot01", 0, 1, 10, 0.01)  # warm-up (not timed)
            for _ in range(rounds):
                for config in CONFIGS:
                    url = urls.get(config, redis.url)
                    configure(door, config, url, scan_dir)
                    res[config].append(timed_scan(door, params, pids.get(
                        config, (server.pid, redis.process.pid))))
                    number = int(door.get_env("ScanID"))
                    if config in ("b", "d"):
                        check_published(url, number, intervals + 1, ncolumns=7)
                    if config == "c":
                        _check_spec(scan_dir / "x.dat", number, intervals + 1)
    med = {c: [statistics.median(r[k] for r in res[c]) for k in range(4)] for c in CONFIGS}
    pct = lambda c: (med[c][0] / med["a"][0] - 1) * 100  # noqa: E731
    diff = lambda c, k: "" if c == "a" else f"{(med[c][k] - med['a'][k]) * 1e3:+.0f}"  # noqa: E731
    rows = [[f"({c}) {CONFIGS[c]}", f"{med[c][0]:.3f}", "" if c == "a" else f"{pct(c):+.1f} %",
             " ".join(f"{r[0]:.2f}" for r in res[c]), diff(c, 1),
             diff(c, 0) and f"{(med[c][0] - med[c][1] - med['a'][0] + med['a'][1]) * 1e3:+.0f}",
             f"{med[c][2]:.2f}", diff(c, 2), f"{med[c][3]:.2f}"]
            for c in CONFIGS]
    print_table(f"ascanct mot01 0 10 {intervals} 0.01 ({intervals + 1} points, mntgrp01), "
                f"{rounds} round(s), medians; targets: (b) < +{TARGET_PCT:g} % over (a), (b) and "
                "(d) < (c)",
                ["configuration", "wall (s)", "vs (a)", "wall runs (s)", "startts-endts vs (a) (ms)",
                 "rest vs (a) (ms)", "Sardana CPU (s)", "vs (a) (ms)", "Redis CPU (s)"], rows)
    spread = max(r[0] for r in res["a"]) - min(r[0] for r in res["a"])
    verdict = lambda ok: "MET" if ok else "MISSED"  # noqa: E731
    print(f"target (b) < +{TARGET_PCT:g} % over (a): {verdict(pct('b') < TARGET_PCT)} "
          f"({pct('b'):+.1f} %; run-to-run spread of (a): {spread * 1e3:.0f} ms)")
    for c in ("b", "d"):
        wall, cpu = ((med[c][k] - med["c"][k]) * 1e3 for k in (0, 2))
        print(f"target ({c}) cheaper than (c): wall {verdict(wall < 0)} ({c} - c = {wall:+.0f} ms), "
              f"Sardana CPU {verdict(cpu < 0)} ({c} - c = {cpu:+.0f} ms)")
    print()
    return {"runs": res, "median": med}


def _check_spec(path: Path, number: int, npoints: int) -> None:
    """The SPEC file's scan ``number`` holds ``npoints`` data lines."""
    lines, inside = 0, False
    for line in path.read_text().splitlines():
        if line.startswith("#S "):
            inside = line.split()[1] == str(number)
        elif inside and line and not line.startswith("#"):
            lines += 1
    assert lines == npoints, f"{path}: scan {number} has {lines} points, expected {npoints}"


if __name__ == "__main__":
    bench_main(run, __doc__, rounds=True)
