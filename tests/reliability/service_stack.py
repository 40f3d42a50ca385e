"""A real stack for the service-side fault cases: a Redis Stack server, both writers and
the memory tracker as processes, and live scans published by the recorder's own
:class:`~sardana_redis.publishing.publisher.ScanPublisher`.

Every process is a :class:`~sardana_redis.local_stack.services.ServiceProcess` (stopped
by the autouse fixture of ``tests/conftest.py``) or the :class:`RedisStackServer` the
``service_stack`` fixture stops.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import redis
from blissdata.exceptions import ScanNotFoundError

from sardana_redis.datastore import open_data_store
from sardana_redis.following.ledger import DoneRecord, WriterLedger
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.redis_connection import redis_client
from sardana_redis.scan_model import EndReason, ScanEnd
from tests.reliability.accounting import ScanRef
from tests.scan_descriptions import STEP_COLUMNS, requested_files, step_scan
from tests.scan_descriptions import spectrum as spectrum_column  # LiveScan's spectrum: a size
from tests.services import writer_process

WRITERS = ("spec-writer", "nexus-writer")
KIND = {"spec-writer": "spec", "nexus-writer": "nexus"}
SESSION = "faults"
POINT_STREAM = STEP_COLUMNS[0].stream


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.1):
    """``condition()``'s first true value, polled until ``timeout`` seconds (AssertionError)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        time.sleep(poll)
    return value


class LiveScan:
    """One scan published through :class:`ScanPublisher` into a SPEC and a NeXus file,
    with scalar columns and, when ``spectrum`` > 0, a 1D channel of that many points."""

    def __init__(self, url: str, number: int, spec_file: Path, nexus_file: Path,
                 spectrum: int = 0, **publisher_options: object) -> None:
        self.number = number
        self.files = {"spec": str(spec_file), "nexus": str(nexus_file)}
        self.spectrum = np.random.random(spectrum) if spectrum else None
        columns = STEP_COLUMNS + ((spectrum_column(points=spectrum),) if spectrum else ())
        description = step_scan(number, SESSION, columns, files=requested_files(**self.files))
        self.publisher = ScanPublisher(url, description, **publisher_options)
        self.pushed = 0
        self.publisher.start()

    @property
    def key(self) -> str:
        """The blissdata key, once the publisher created the scan."""
        return wait_for(lambda: self.publisher.key, 20, f"scan #{self.number} created")

    def push(self, count: int) -> None:
        """Hand ``count`` more points to the publisher (never blocks)."""
        for i in range(self.pushed, self.pushed + count):
            self.publisher.push({"point_nb": i, "mot01": i / 10, "ct01": float(i),
                                 "oned01": self.spectrum})
        self.pushed += count

    def finish(self, reason: EndReason = EndReason.SUCCESS, wait: float = 30.0) -> bool:
        """End the scan as the recorder does; True when it is closed in Redis."""
        self.publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", reason), wait)
        # finish() returns at once while Redis is away: wait for the publisher itself
        return self.publisher.wait(wait) and self.publisher.state.name == "CLOSED"

    def refs(self, points: int | None = None, kinds: Iterable[str] = ("spec", "nexus")
             ) -> dict[ScanRef, int]:
        """This scan in each of its files, with ``points`` (default: all pushed) expected."""
        count = self.pushed if points is None else points
        return {(kind, self.files[kind], self.number): count for kind in kinds}


class Pusher:
    """Pushes points into live scans from a thread, at a pace, until stopped."""

    def __init__(self, scans: list[LiveScan], rate: float = 200.0, batch: int = 5) -> None:
        self.scans = scans
        self.period = batch / rate
        self.batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pusher", daemon=True)

    def __enter__(self) -> "Pusher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for scan in self.scans:
                scan.push(self.batch)


def points_in_redis(url: str, key: str) -> int:
    """Points of the scan's point-number stream that Redis holds (0 when the scan is gone)."""
    try:
        scan = open_data_store(url, init=False).load_scan(key)
    except ScanNotFoundError:
        return 0
    stream = scan.streams.get(POINT_STREAM)  # None until the scan is prepared
    return len(stream) if stream is not None else 0


class ServiceStack:
    """Redis Stack, the two writers and the memory tracker, for one fault case; with
    ``replicas``, a Redis managed by Sentinel (:class:`RedisHA`: a primary, ``replicas``
    replicas, 3 sentinels), the services given its ``redis+sentinel://`` URL."""

    def __init__(self, workdir: Path, *, persistence: bool = False, maxmemory: str = "200mb",
                 redis_options: Iterable[str] = (), more_roots: Iterable[Path] = (),
                 writer_options: Iterable[str] = (), replicas: int = 0) -> None:
        self.workdir = workdir
        self.root = workdir / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        self.more_roots = list(more_roots)  #: other folders the writers may write under
        self.writer_options = list(writer_options)  #: more options of both writers
        self.redis: RedisStackServer | RedisHA = (
            RedisHA(workdir / "redis", replicas=replicas, maxmemory=maxmemory) if replicas else
            RedisStackServer(workdir / "redis", maxmemory=maxmemory, persistence=persistence,
                             extra=list(redis_options)))
        self.services: dict[str, ServiceProcess] = {}
        self._logs = itertools.count()

    @property
    def url(self) -> str:
        return self.redis.url

    def log_file(self, name: str) -> Path:
        """A new log file per start (a restarted service must not see its old "ready" line)."""
        return self.workdir / f"{name}-{next(self._logs)}.log"

    def start_redis(self) -> None:
        self.redis.start()

    def start_writer(self, name: str) -> ServiceProcess:
        """Start (or restart) the writer ``name`` (``spec-writer`` or ``nexus-writer``)."""
        service = writer_process(name, self.url, self.root, self.log_file(name))
        for root in self.more_roots:
            service.args += ["--root", str(root)]
        service.args += self.writer_options
        self.services[name] = service.start()
        return service

    def start_tracker(self, *options: str) -> ServiceProcess:
        """Start (or restart) ``sardana-redis memory-tracker`` keeping both writers' data."""
        args = ["--redis-url", self.url, "--monitoring-period", "0.5", "--init-db"]
        for writer in WRITERS:
            args += ["--writer", writer]
        service = ServiceProcess("memory-tracker", args + list(options),
                                 self.log_file("memory-tracker"))
        self.services["memory-tracker"] = service.start(ready="INIT | Writers")
        return service

    def start_all(self, *tracker_options: str) -> None:
        """Redis, then both writers and the tracker."""
        self.start_redis()
        for name in WRITERS:
            self.start_writer(name)
        self.start_tracker(*tracker_options)

    def scan(self, number: int, name: str = "scans", spectrum: int = 0,
             root: Path | None = None, **publisher_options: object) -> LiveScan:
        """A new live scan into ``<root>/<name>.dat`` and ``<root>/<name>.h5``."""
        root = root or self.root
        return LiveScan(self.url, number, root / f"{name}.dat", root / f"{name}.h5", spectrum,
                        **publisher_options)

    def done(self, key: str, writer: str) -> DoneRecord | None:
        """The writer's done record of a scan; None while it has none, or while Redis does
        not answer (during a failover)."""
        client = redis_client(self.url)
        try:
            return WriterLedger(client, writer).done(key)
        except redis.ConnectionError:
            return None
        finally:
            client.close()

    def wait_written(self, keys: Iterable[str], writers: Iterable[str] = WRITERS,
                     timeout: float = 60.0) -> dict[tuple[str, str], DoneRecord]:
        """Every writer's done record of every scan, once they all have one."""
        wanted = [(key, writer) for key in keys for writer in writers]
        records: dict[tuple[str, str], DoneRecord] = {}

        def all_done() -> bool:
            for key, writer in wanted:
                if (key, writer) not in records and (record := self.done(key, writer)):
                    records[key, writer] = record
            return len(records) == len(wanted)

        wait_for(all_done, timeout, f"done records of {wanted}")
        return records

    def logs(self) -> str:
        """Every service log of this case (for assertions on log lines)."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        self.redis.stop()


def assert_running(stack: ServiceStack) -> None:
    """No service process died."""
    dead = {name: s.process.returncode for name, s in stack.services.items() if s.process.poll() is not None}
    assert not dead, f"services died: {dead}\n{stack.logs()[-5000:]}"


def spec_headers(path: str, number: int) -> int:
    """How many ``#S number`` blocks a SPEC file has."""
    return sum(1 for line in open(path) if line.split()[:2] == ["#S", str(number)])


@pytest.fixture
def stacks(tmp_path):
    """Makes :class:`ServiceStack` s in ``tmp_path``; stops them all at the end."""
    made: list[ServiceStack] = []

    def make(name: str = "stack", **options) -> ServiceStack:
        made.append(ServiceStack(tmp_path / name, **options))
        return made[-1]

    yield make
    for stack in made:
        stack.stop()
