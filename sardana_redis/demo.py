"""``make demo``: the whole chain on this machine, from nothing.

Starts a local Redis Stack, the SPEC and NeXus writers, the memory tracker, the live
viewer (``sardana-redis web``, its address printed),
a local Tango database and a demo Sardana (``sar_demo``, fast motors, and counters
that peak: a Gaussian of ``mot01``'s position) in ``demo-output/``; runs a step scan,
a continuous scan and a scan with the 1D channel, published by the RedisBlissRecorder;
then shows the SPEC file, the NeXus tree and the last scan read back through blissdata.
``--keep`` leaves the stack running until Ctrl-C and prints the commands (spock,
``sardana-redis``) to paste in another shell. When a component fails, the demo says
which one and where its log is, stops everything it started and exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import redis as redis_client

from sardana_redis.following.ledger import WriterLedger
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.sardana_server import SardanaServer
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.local_stack.spock_profile import write_spock_profile
from sardana_redis.local_stack.tango_db import TangoDatabase
from sardana_redis.paths import DEMO_CONTROLLER_PATH, MACRO_PATH, RECORDER_PATH
from sardana_redis.redis_url import normalize_redis_url

if TYPE_CHECKING:
    from sardana_redis.local_stack.door import DoorClient

SESSION = "demo"
#: The demo's counters with a peak (GaussianCTCtrl.py): a timer and two Gaussians of mot01.
GAUSS_CONTROLLER = ("GaussianCounterTimerController", "gaussctrl")
GAUSS_CHANNELS = ("gct01", "gauss01", "gauss02")
GAUSS_GROUP = "mg_gauss"
SCANS = [
    ("step scan with counters", GAUSS_GROUP, "ascan", ["mot01", 0, 5, 20, 0.01]),
    # 0.02 s counting, 0.08 s latency: software triggers every 0.1 s, slow enough for the
    # dummy's software acquisition (with no latency, about every other trigger is missed)
    ("continuous scan", GAUSS_GROUP, "ascanct", ["mot01", 0, 5, 20, 0.02, 0.08]),
    ("scan with the 1D channel", "mg_demo_1d", "ascan", ["mot02", 0, 1, 5, 0.01]),
]
SERVICES = ("spec-writer", "nexus-writer", "memory-tracker")
SPOCK_PROFILE = "demo"


class DemoError(RuntimeError):
    """A component failed: the message says which one and where its log is."""


@contextlib.contextmanager
def step(title: str, component: str, log: Path | None) -> Iterator[None]:
    """Print a progress line (and how long the step took); turn any failure into a
    :class:`DemoError` naming the component and its log."""
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    try:
        yield
    except DemoError:
        raise
    except Exception as exc:
        raise DemoError(failure_message(component, exc, log)) from exc
    print(f"    ({time.monotonic() - started:.1f} s)", flush=True)


def failure_message(component: str, exc: BaseException, log: Path | None) -> str:
    """``COMPONENT failed: REASON`` and where its log is (or that it wrote none)."""
    message = f"{component} failed: {exc}"
    if log is None:
        return message
    where = "" if log.exists() else " (not written: it failed before starting)"
    return f"{message}\n    {component} log: {log}{where}"


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
        def show(name: str, obj: Any) -> None:
            depth = name.count("/")
            if depth > 2:
                return
            kind = f"{obj.shape} {obj.dtype}" if isinstance(obj, h5py.Dataset) else \
                obj.attrs.get("NX_class", "")
            print(f"    {'  ' * depth}{name.rsplit('/', 1)[-1]}  {kind}")
        f[f"entry{number}"].visititems(show)


def run_demo(workdir: Path, keep: bool, redis_port: int | None = None) -> None:
    """Start the stack in ``workdir``, run the scans, show the results, stop (unless ``keep``).

    The services (writers, memory tracker) start right after Redis: they need nothing else.
    """
    with step(f"Preparing {workdir}", "work folder", None):
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "scans").mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        redis = start_redis(stack, workdir, redis_port)
        url = normalize_redis_url(redis.url)  # as a blissdata DataStore needs it with redis-py 8
        for name in SERVICES:
            start_service(stack, workdir, name, url)
        viewer = start_viewer(stack, workdir, url)
        tango_host = start_tango(stack, workdir)
        sardana, door = start_sardana(stack, workdir, tango_host, url)
        numbers = run_scans(door, sardana.sardana_log)
        png = show_results(workdir, url, numbers)
        print("==> Where the data went")
        print(f"    SPEC file (SPEC writer): {workdir / 'scans' / 'scans.dat'}")
        nexus_file = workdir / "scans" / "scans.h5"
        print(f"    NeXus file (NeXus writer, open with silx view): {nexus_file}")
        print(f"    Plot: {png}")
        print(f"    Live viewer (sardana-redis web, open it in a browser): {viewer}")
        print(f"    Logs (servers and services): {workdir}")
        if keep:
            print(f"    Redis: {url} (session {SESSION!r}, scans {numbers})")
            write_spock_profile(workdir / "ipython", SPOCK_PROFILE, sardana.door_name,
                                sardana.macroserver_name)
            wait_for_ctrl_c(keep_message(workdir, tango_host, url, numbers[0]))
        else:
            print(f"    Redis: stopped with the demo (session {SESSION!r}, scans {numbers}); "
                  "make demo-keep leaves it running and prints how to use it")
    print("==> Demo finished: everything it started is stopped.")


def keep_message(workdir: Path, tango_host: str, url: str, first_scan: int) -> str:
    """What ``--keep`` prints: commands that work pasted in a fresh shell (absolute paths,
    every variable they need exported)."""
    bin_dir = Path(sys.executable).parent
    variables = {"TANGO_HOST": tango_host, "REDIS_URL": url,
                 "IPYTHONDIR": str(workdir / "ipython")}
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())
    cli = shlex.quote(str(bin_dir / "sardana-redis"))
    return "\n".join([
        "==> The stack keeps running. In another shell, paste:",
        f"    export {exports}",
        f"    {shlex.quote(str(bin_dir / 'spock'))} --profile={SPOCK_PROFILE}"
        f"    # then: {' '.join(str(p) for p in (SCANS[0][2], *SCANS[0][3]))}",
        f"    {cli} scans",
        f"    {cli} show {first_scan}",
        "    Ctrl-C here stops everything.",
    ])


def start_redis(stack: contextlib.ExitStack, workdir: Path, port: int | None) -> RedisStackServer:
    """A Redis Stack in ``workdir/redis``, stopped with ``stack``."""
    redis = RedisStackServer(workdir / "redis", port=port)
    with step("Starting Redis Stack", "Redis Stack", redis.log_file):
        stack.callback(redis.stop)  # also when it fails to start: nothing is left running
        redis.start()
        print(f"    {redis.url}")
    return redis


def start_service(stack: contextlib.ExitStack, workdir: Path, name: str, url: str) -> None:
    """``sardana-redis NAME`` (a writer or the memory tracker), stopped with ``stack``."""
    log_file = workdir / f"{name}.log"
    args = ["--redis-url", url] + (["--root", str(workdir / "scans")] if "writer" in name else
                                   ["--monitoring-period", "5"])
    with step(f"Starting the {name}: sardana-redis {name}", name, log_file):
        ready = "INIT |" if name == "memory-tracker" else "Waiting for scan"
        service = ServiceProcess(name, args, log_file).start(ready=ready)
        stack.callback(service.stop)


def start_viewer(stack: contextlib.ExitStack, workdir: Path, url: str) -> str:
    """``sardana-redis web`` on a free loopback port, stopped with ``stack``; its address."""
    from sardana_redis.web.app import STARTED, address_in

    log_file = workdir / "web.log"
    with step("Starting the live viewer: sardana-redis web", "web viewer", log_file):
        service = ServiceProcess("web", ["--redis-url", url, "--port", "0"], log_file)
        service.start(ready=STARTED)
        stack.callback(service.stop)
        address = address_in(service.log())
        if address is None:
            raise RuntimeError(f"sardana-redis web did not say its address, see {log_file}")
        print(f"    {address}")
    return address


def start_tango(stack: contextlib.ExitStack, workdir: Path) -> str:
    """A Tango database in ``workdir/tango``, stopped with ``stack``; its TANGO_HOST."""
    db = TangoDatabase(workdir / "tango")
    with step("Starting the Tango database", "Tango database", db.log_file):
        stack.enter_context(db)
        os.environ["TANGO_HOST"] = db.tango_host
        print(f"    TANGO_HOST={db.tango_host}")
    return db.tango_host


def start_sardana(stack: contextlib.ExitStack, workdir: Path, tango_host: str,
                  url: str) -> tuple[SardanaServer, DoorClient]:
    """The demo Sardana (sar_demo, fast motors) publishing to ``url``, and a Door client."""
    sardana = SardanaServer(tango_host, workdir / "sardana", recorder_path=[RECORDER_PATH],
                            macro_path=[MACRO_PATH], pool_path=[DEMO_CONTROLLER_PATH])
    with step("Starting Sardana (Pool, MacroServer, Door) and its demo elements",
              "Sardana", sardana.log_file):
        stack.enter_context(sardana)
        from sardana_redis.local_stack.door import DoorClient

        door = DoorClient(sardana.door_name)
        stack.callback(door.close)
        door.setup_demo()
        define_gaussian_counters(door)
        door.run("defmeas", "mg_demo_1d", ["ct01", "oned01"])
        door.set_env(RedisURL=url, DataRecorder=[], RedisSession=SESSION,
                     ScanDir=str(workdir / "scans"), ScanFile=["scans.dat", "scans.h5"],
                     ScanRecorder=["RedisBlissRecorder", "RedisBlissRecorder"],
                     ActiveMntGrp=GAUSS_GROUP)
        door.run("plotselect", list(GAUSS_CHANNELS[1:]))  # of the active measurement group
    return sardana, door


def define_gaussian_counters(door: DoorClient) -> None:
    """The Gaussian controller (from the Pool's PoolPath), its channels and their
    measurement group."""
    ctrl_class, ctrl = GAUSS_CONTROLLER
    commands: list[tuple[Any, ...]] = [("defctrl", ctrl_class, ctrl)]
    commands += [("defelem", name, ctrl, axis) for axis, name in enumerate(GAUSS_CHANNELS, 1)]
    commands.append(("defmeas", GAUSS_GROUP, list(GAUSS_CHANNELS)))
    for macro, *params in commands:
        result = door.run(macro, *params)
        if not result.ok:
            raise RuntimeError(f"{macro} {params} ended with {result.status}: {result.error}")
        if macro == "defelem":
            door.wait_elements([params[0]])


def run_scans(door: DoorClient, sardana_log: Path) -> list[int]:
    """Run the demo's scans; their numbers."""
    numbers = []
    for title, group, macro, params in SCANS:
        command = " ".join(str(p) for p in (macro, *params))
        with step(f"Running a {title}: {command}", "Sardana scan", sardana_log):
            door.set_env(ActiveMntGrp=group)
            result = door.run(macro, *params, timeout=300)
            if not result.ok:
                raise RuntimeError(f"{command} ended with {result.status}: {result.error}")
            numbers.append(int(door.get_env("ScanID")))
    door.set_env(ActiveMntGrp=GAUSS_GROUP)  # what a spock scan then uses
    return numbers


def show_results(workdir: Path, url: str, numbers: list[int]) -> Path:
    """Wait for the files, show them, read the last scan back, plot the first; the PNG."""
    scan_dir = workdir / "scans"
    with step("Waiting for the writers", "writers", workdir):
        wait_written(url, numbers)
    with step("The SPEC writer's file", "SPEC writer", workdir / "spec-writer.log"):
        show_spec(scan_dir / "scans.dat", numbers[0])
    with step("The NeXus writer's file", "NeXus writer", workdir / "nexus-writer.log"):
        show_nexus(scan_dir / "scans.h5", numbers[-1])
    with step("Reading the last scan back through blissdata", "blissdata reader", None):
        print(f"    >>> data_store = DataStore({url!r})")
        read_back(url, numbers[-1])
    png = workdir / f"scan{numbers[0]}.png"
    with step(f"Plotting scan #{numbers[0]} (sardana-redis plot)", "plot", None):
        from blissdata.redis_engine.store import DataStore

        from sardana_redis.browse import find_scan
        from sardana_redis.scan_plot import plot

        drawn = plot(find_scan(DataStore(url), str(numbers[0]), SESSION), png)
        print(f"    {png}: {', '.join(drawn.streams)}")
    return png


def wait_for_ctrl_c(message: str) -> None:
    """Print ``message``, then wait for Ctrl-C (SIGINT) or SIGTERM. The handlers are in
    place before the message, so a Ctrl-C right after it is not lost."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(message, flush=True)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """``make demo`` / ``make demo-keep``; exit status 1 when a component failed."""
    parser = argparse.ArgumentParser(prog="python -m sardana_redis.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"),
                        help="folder for servers, logs and files (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running until Ctrl-C")
    parser.add_argument("--redis-port", type=int,
                        help="TCP port of the demo's Redis, on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    try:
        run_demo(args.workdir.resolve(), args.keep, args.redis_port)
    except DemoError as exc:
        print(f"DEMO FAILED: {exc}\nEverything the demo started is stopped.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Demo interrupted: everything it started is stopped.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
