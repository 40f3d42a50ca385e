"""``make demo``: the whole chain on this machine, from nothing.

Starts a local Redis Stack, a local Tango database, a demo Sardana
(``sar_demo``, fast motors), the SPEC and NeXus writers and the memory
tracker in ``demo-output/``; runs a step scan, a continuous scan and a scan
with the 1D channel, published by the RedisBlissRecorder; then shows the
SPEC file, the NeXus tree and the last scan read back through blissdata.
``--keep`` leaves the stack running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import redis as redis_client

from sardana_redis.following.ledger import WriterLedger
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.local_stack.sardana_server import MACRO_PATH, RECORDER_PATH, SardanaServer
from sardana_redis.local_stack.tango_db import TangoDatabase

SESSION = "demo"
SCANS = [
    ("step scan with counters", "mntgrp01", "ascan", ["mot01", 0, 10, 10, 0.01]),
    ("continuous scan", "mntgrp01", "ascanct", ["mot01", 0, 5, 10, 0.1]),
    ("scan with the 1D channel", "mg_demo_1d", "ascan", ["mot02", 0, 1, 5, 0.01]),
]
SERVICES = ("spec-writer", "nexus-writer", "memory-tracker")


class DemoError(RuntimeError):
    """A component failed: the message says which one and where its log is."""


@contextlib.contextmanager
def step(title: str, component: str, log: Path | None) -> Iterator[None]:
    """Print a progress line; turn any failure into a :class:`DemoError` naming the component."""
    print(f"==> {title}", flush=True)
    try:
        yield
    except DemoError:
        raise
    except Exception as exc:
        where = f" (log: {log})" if log else ""
        raise DemoError(f"{component} failed: {exc}{where}") from exc


def read_back(url: str, number: int) -> None:
    """Read one scan through blissdata, like a user would in IPython."""
    from blissdata.redis_engine.store import DataStore

    store = DataStore(url)
    _, keys = store.search_existing_scans(session=SESSION, number=number)
    scan = store.load_scan(keys[-1])
    print(f"    >>> scan = data_store.load_scan({scan.key!r})")
    print("    >>> scan.name, scan.number, scan.state.name, scan.info['end_reason']")
    print(f"    {scan.name!r}, {scan.number}, {scan.state.name!r}, {scan.info.get('end_reason')!r}")
    print("    >>> {name: len(stream) for name, stream in scan.streams.items()}")
    print(f"    {({name: len(s) for name, s in scan.streams.items()})}")
    print("    >>> scan.streams['ct01'][:3]")
    print(f"    {scan.streams['ct01'][:3]!r}")


def wait_written(url: str, numbers: list[int], timeout: float = 60) -> None:
    """Wait until both writers have written every scan of the demo."""
    from blissdata.redis_engine.store import DataStore

    store, client = DataStore(url), redis_client.Redis.from_url(url)
    keys = [store.search_existing_scans(session=SESSION, number=n)[1][-1] for n in numbers]
    deadline = time.monotonic() + timeout
    for writer in ("spec-writer", "nexus-writer"):
        ledger = WriterLedger(client, writer)
        for key in keys:
            while (record := ledger.done(key)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{writer} did not write {key}")
                time.sleep(0.2)
            if record.status != "written":
                raise RuntimeError(f"{writer}: {key} {record.status}: {record.detail}")
    print(f"    both writers wrote scans {numbers}")


def show_spec(path: Path, number: int, lines: int = 22) -> None:
    """The head of one scan block of the SPEC file."""
    print(f"==> {path}, scan #{number}:")
    text = path.read_text().split(f"#S {number} ", 1)[1]
    for line in (f"#S {number} " + text).splitlines()[:lines]:
        print(f"    {line[:100]}")


def show_nexus(path: Path, number: int) -> None:
    """The tree of one entry of the NeXus file."""
    print(f"==> {path}, entry{number}:")
    with h5py.File(path, "r", locking=False) as f:
        def show(name: str, obj: object) -> None:
            depth = name.count("/")
            if depth > 2:
                return
            kind = f"{obj.shape} {obj.dtype}" if isinstance(obj, h5py.Dataset) else \
                obj.attrs.get("NX_class", "")
            print(f"    {'  ' * depth}{name.rsplit('/', 1)[-1]}  {kind}")
        f[f"entry{number}"].visititems(show)


def run_demo(workdir: Path, keep: bool) -> None:
    """Start the stack in ``workdir``, run the scans, show the results, stop (unless ``keep``)."""
    shutil.rmtree(workdir, ignore_errors=True)
    scan_dir = workdir / "scans"
    scan_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        redis = RedisStackServer(workdir / "redis")
        with step("Starting Redis Stack", "Redis Stack", redis.log_file):
            stack.enter_context(redis)
            print(f"    {redis.url}")
        tango_dir = workdir / "tango"
        with step("Starting the Tango database", "Tango database", tango_dir):
            db = stack.enter_context(TangoDatabase(tango_dir))
            os.environ["TANGO_HOST"] = db.tango_host
            print(f"    TANGO_HOST={db.tango_host}")
        sardana_dir = workdir / "sardana"
        with step("Starting Sardana (Pool, MacroServer, Door) and its demo elements",
                  "Sardana", sardana_dir / "sardana.log"):
            sardana = stack.enter_context(SardanaServer(
                db.tango_host, sardana_dir, recorder_path=[RECORDER_PATH], macro_path=[MACRO_PATH]))
            from sardana_redis.local_stack.door import DoorClient

            door = DoorClient(sardana.door_name)
            stack.callback(door.close)
            door.setup_demo()
            door.run("defmeas", "mg_demo_1d", ["ct01", "oned01"])
            door.set_env(RedisURL=redis.url, DataRecorder=[], RedisSession=SESSION,
                         ScanDir=str(scan_dir), ScanFile=["scans.dat", "scans.h5"],
                         ScanRecorder=["RedisBlissRecorder", "RedisBlissRecorder"])
            door.run("plotselect", ["ct01", "ct02"])
        for name in SERVICES:
            log_file = workdir / f"{name}.log"
            args = ["--redis-url", redis.url] + (["--root", str(scan_dir)] if "writer" in name else
                                                 ["--monitoring-period", "5"])
            with step(f"Starting the {name}", name, log_file):
                ready = "INIT |" if name == "memory-tracker" else "Waiting for scan"
                service = ServiceProcess(name, args, log_file).start(ready=ready)
                stack.callback(service.stop)
        numbers = []
        for title, group, macro, params in SCANS:
            command = " ".join(str(p) for p in (macro, *params))
            with step(f"Running a {title}: {command}", "Sardana scan", sardana_dir / "sardana.log"):
                door.set_env(ActiveMntGrp=group)
                result = door.run(macro, *params, timeout=300)
                if not result.ok:
                    raise RuntimeError(f"{command} ended with {result.status}: {result.error}")
                numbers.append(int(door.get_env("ScanID")))
        with step("Waiting for the writers", "writers", workdir):
            wait_written(redis.url, numbers)
        show_spec(scan_dir / "scans.dat", numbers[0])
        show_nexus(scan_dir / "scans.h5", numbers[-1])
        with step("Reading the last scan back through blissdata", "blissdata reader", None):
            print(f"    >>> data_store = DataStore({redis.url!r})")
            read_back(redis.url, numbers[-1])
        png = workdir / f"scan{numbers[0]}.png"
        with step(f"Plotting scan #{numbers[0]} (sardana-redis plot)", "plot", None):
            from blissdata.redis_engine.store import DataStore

            from sardana_redis.browse import find_scan, plot

            curves = plot(find_scan(DataStore(redis.url), str(numbers[0]), SESSION), png)
            print(f"    {png}: {', '.join(curves)}")
        print("==> Where the data went")
        print(f"    Redis: {redis.url} (session {SESSION!r}, scans {numbers})")
        print(f"    SPEC file (SPEC writer): {scan_dir / 'scans.dat'}")
        print(f"    NeXus file (NeXus writer, open with silx view): {scan_dir / 'scans.h5'}")
        print(f"    Plot: {png}")
        print(f"    Browse: sardana-redis scans --redis-url {redis.url}")
        print(f"    Logs (servers and services): {workdir}")
        if keep:
            print("==> The stack keeps running. Connect spock with:")
            print(f"    TANGO_HOST={db.tango_host} spock --profile=demo  "
                  f"(door {sardana.door_name}); Ctrl-C here stops everything.")
            _wait_for_interrupt()
    print("==> Demo finished: everything it started is stopped.")


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sardana_redis.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"),
                        help="folder for servers, logs and files (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        run_demo(args.workdir.resolve(), args.keep)
    except DemoError as exc:
        print(f"DEMO FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
