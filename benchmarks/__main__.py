"""Run every benchmark in order and print its tables.

    python -m benchmarks [--only NAME] [--quick] [--rounds N]

NAME: recorder_cost, scan_overhead, latency, spool, spec_writer, memory_tracker, nexus_writer,
failover, web. Each one
runs in its own Python process (no threads, Tango clients or environment left over from the
previous one) and starts, then stops, the servers it needs. ``--quick``: smaller runs, a
smoke test whose figures are not for the docs. Exit status 1 when one failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

from benchmarks.common import ROOT

BENCHMARKS = ("recorder_cost", "scan_overhead", "latency", "spool", "spec_writer",
              "memory_tracker", "nexus_writer", "failover", "web")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.platform()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=BENCHMARKS, help="run this benchmark only")
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs")
    parser.add_argument("--rounds", type=int,
                        help="rounds of scan_overhead and of the Sardana scans of spec_writer "
                             "and nexus_writer (default 3, quick 1)")
    args = parser.parse_args(argv)
    print(f"sardana-redis benchmarks, {datetime.datetime.now():%Y-%m-%d %H:%M}"
          f"{' (quick)' if args.quick else ''}\nmachine: {machine()}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    failed = []
    t0 = time.monotonic()
    for name in BENCHMARKS:
        if args.only and name != args.only:
            continue
        print(f"\n=== {name}", flush=True)
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + ["--quick"] * args.quick
        if name in ("scan_overhead", "spec_writer", "nexus_writer") and args.rounds:
            cmd += ["--rounds", str(args.rounds)]
        t1 = time.monotonic()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
        print(f"({name}: {time.monotonic() - t1:.0f} s)", flush=True)
    print(f"\nall done in {time.monotonic() - t0:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
