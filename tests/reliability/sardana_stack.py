"""What the Sardana reliability cases share: a Tango host for the module, reading back what
was published (blissdata) and what the writers made of it, compared with Sardana's own
SPEC_FileRecorder (the oracle, ``oracle.dat`` beside the writers' ``scans.dat`` and
``scans.h5``), and the writer and tracker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np
from blissdata.redis_engine.scan import ScanState

from sardana_redis.datastore import open_data_store
from sardana_redis.local_stack.door import DoorClient
from sardana_redis.local_stack.services import ServiceProcess
from tests.recorder_helpers import SESSION
from tests.reliability.accounting import ScanRef
from tests.services import scan_key, wait_done, writer_process
from tests.spec_files import assert_same_scan, scan_block
from tests.tango_servers import wait_for

#: Writer service processes (their default names).
WRITERS = ("spec-writer", "nexus-writer")
SPEC, NEXUS, ORACLE = "scans.dat", "scans.h5", "oracle.dat"
#: --publisher-timeout of the memory tracker in these tests (default 60 s).
PUBLISHER_TIMEOUT = 3


@contextlib.contextmanager
def default_tango_host(tango_host: str) -> Iterator[None]:
    """``TANGO_HOST`` and taurus' default authority point to ``tango_host`` inside, and are
    restored after (both are process-global; the session's Sardana fixtures use them)."""
    from taurus.core.tango import TangoFactory

    factory = TangoFactory()
    old_env, old_default = os.environ.get("TANGO_HOST"), factory.get_default_tango_host()
    os.environ["TANGO_HOST"] = tango_host
    factory.set_default_tango_host(tango_host)
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("TANGO_HOST", None)
        else:
            os.environ["TANGO_HOST"] = old_env
        if old_default or old_env:
            factory.set_default_tango_host(old_default or old_env)
        else:  # taurus had no default yet: let it take $TANGO_HOST again when next used
            factory._default_tango_host, factory.dft_db = None, None


def close_quietly(door: DoorClient) -> None:
    """Remove the Door client's listeners, if its Sardana still answers."""
    with contextlib.suppress(Exception):
        door.close()


def wait_closed(url: str, key: str, timeout: float) -> object:
    """The blissdata scan ``key`` once CLOSED."""
    store = open_data_store(url, init=False)
    return wait_for(lambda: (s := store.load_scan(key)).state == ScanState.CLOSED and s,
                    f"scan {key} to be closed", timeout)


def published_points(scan: object) -> int:
    """Complete rows of a closed scan in Redis: point numbers 0..N-1 in every stream."""
    lengths = {name: len(stream[:]) for name, stream in scan.streams.items()}
    count = min(lengths.values())
    np.testing.assert_array_equal(scan.streams["#Pt No"][:count], np.arange(count))
    return count


def file_refs(scan_dir: Path, number: int) -> tuple[ScanRef, ScanRef]:
    """The SPEC and NeXus scans the writers make of Sardana scan ``number``."""
    return ("spec", str(scan_dir / SPEC), number), ("nexus", str(scan_dir / NEXUS), number)


def assert_like_sardana(scan_dir: Path, number: int, rows: int) -> None:
    """The first ``rows`` data lines of the SPEC writer's block equal Sardana's own (those
    Sardana has: a killed Sardana may have written fewer)."""
    ours, oracle = scan_block(scan_dir / SPEC, number), scan_block(scan_dir / ORACLE, number)
    rows = min(rows, len(oracle.rows))
    assert_same_scan(dataclasses.replace(ours, rows=ours.rows[:rows]),
                     dataclasses.replace(oracle, rows=oracle.rows[:rows]))


def assert_valid_entry(path: Path, number: int, points: int, end_reason: str) -> None:
    """``entry<number>`` is a readable NXentry whose measurement columns all hold ``points``
    rows, and whose end reason is ``end_reason``."""
    with h5py.File(path, "r", locking=False) as f:
        entry = f[f"entry{number}"]
        assert entry.attrs["NX_class"] in ("NXentry", b"NXentry")
        lengths = {name: len(item) for name, item in entry["measurement"].items()
                   if isinstance(item, h5py.Dataset)}
        assert set(lengths.values()) == {points}, lengths
        assert entry["end_reason"][()].decode() == end_reason


def written_scan(url: str, scan_dir: Path, number: int, writers: Iterable[str],
                 timeout: float = 60, session: str = SESSION) -> tuple[object, int]:
    """Wait until scan ``number`` of ``session`` is closed and written by ``writers``; the
    closed scan and its published points. The writers' files must match Sardana's (the
    oracle)."""
    scan = wait_closed(url, scan_key(url, number, session), timeout)
    for writer in writers:
        record = wait_done(url, scan.key, writer, timeout)
        assert record.status == "written", (writer, record)
    points = published_points(scan)
    assert_like_sardana(scan_dir, number, points)
    assert_valid_entry(scan_dir / NEXUS, number, points, scan.info["end_reason"])
    return scan, points


def oracle_rows(scan_dir: Path, number: int) -> int:
    """Points Sardana's SPEC_FileRecorder wrote for scan ``number``."""
    return len(scan_block(scan_dir / ORACLE, number).rows)

def start_services(url: str, scan_dir: Path, logs: Path,
                   publisher_timeout: float = PUBLISHER_TIMEOUT) -> None:
    """Both writers and a memory tracker with a short ``--publisher-timeout`` (stopped by
    the conftest at the end of the test)."""
    for writer in WRITERS:
        writer_process(writer, url, scan_dir, logs / f"{writer}.log").start()
    ServiceProcess("memory-tracker", [
        "--redis-url", url, "--publisher-timeout", str(publisher_timeout),
        "--monitoring-period", "1", *[a for w in WRITERS for a in ("--writer", w)],
    ], logs / "memory-tracker.log").start(ready="INIT |")

