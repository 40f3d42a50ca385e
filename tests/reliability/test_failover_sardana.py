"""Reliability, Redis high availability with real Sardana: the primary is SIGKILLed while
three MacroServers scan at once.

A Redis managed by Sentinel (a primary, 2 replicas, 3 sentinels), one Tango database and
three Sardana servers (each its own Pool with Sardana's demo elements, its own Door), both
writers and the memory tracker as processes; every component is given the
``redis+sentinel://`` URL. Sardana's own SPEC_FileRecorder in the same scans is the oracle
of what was measured: every point of it must be in the writers' files exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import pytest

from sardana_redis.datastore import init_db
from sardana_redis.local_stack.door import DoorClient
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.sardana_server import SardanaServer
from sardana_redis.local_stack.tango_db import TangoDatabase
from tests.recorder_helpers import configure, last_scan_id
from tests.reliability.accounting import spec_points, tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import points_in_redis
from tests.reliability.sardana_stack import (
    NEXUS,
    ORACLE,
    SPEC,
    WRITERS,
    close_quietly,
    default_tango_host,
    file_refs,
    oracle_rows,
    start_services,
    written_scan,
)
from tests.services import scan_key
from tests.tango_servers import wait_for

BEAMLINES = 3
#: Points of each scan (timescan, 20 ms each), and the points recorded before the fault.
POINTS, BEFORE = (1500, 300) if full_scale() else (300, 60)


@dataclasses.dataclass
class Beamlines:
    """The module's Redis (Sentinel-managed), Tango database and Sardana Doors."""

    redis: RedisHA
    db: TangoDatabase
    doors: list[DoorClient]

    @property
    def url(self) -> str:
        return self.redis.url


@pytest.fixture(scope="module")
def beamlines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamlines]:
    workdir = tmp_path_factory.mktemp("failover_sardana")
    with contextlib.ExitStack() as stack:
        ha = stack.enter_context(RedisHA(workdir / "redis", replicas=2))
        init_db(ha.url)
        db = stack.enter_context(TangoDatabase(workdir / "tango_db"))
        stack.enter_context(default_tango_host(db.tango_host))
        doors = []
        for i in range(1, BEAMLINES + 1):
            sardana = stack.enter_context(SardanaServer(db.tango_host, workdir / f"sardana{i}",
                                                        instance=f"ha{i}"))
            door = DoorClient(sardana.door_name)
            stack.callback(close_quietly, door)
            # sar_demo names its elements after the free names of the database (mot05...)
            # and makes its measurement group the ActiveMntGrp of this MacroServer
            result = door.run("sar_demo", timeout=180)
            assert result.ok, result.error
            doors.append(door)
        yield Beamlines(ha, db, doors)


@pytest.mark.skipif(not full_scale(),
                    reason="make reliability only (about 70 s with its 3 Sardana servers: make "
                           "test's budget); make test kills the primary under published scans")
def test_primary_killed_during_sardana_scans(beamlines, reliability, tmp_path):
    """Three timescans at once, one per MacroServer; the primary is SIGKILLed once each has
    recorded ``BEFORE`` points. Sardana goes on (the recorder spools), a replica is promoted,
    the publishers send it what it lacks, the writers go on: the files hold every point of
    Sardana's own SPEC file, once."""
    root = tmp_path / "scans"
    root.mkdir()
    start_services(beamlines.url, root, tmp_path, publisher_timeout=60)
    numbers, dirs = [], []
    for i, door in enumerate(beamlines.doors, 1):
        dirs.append(root / f"bl{i}")
        dirs[-1].mkdir()
        configure(door, beamlines.url, dirs[-1], ScanFile=[ORACLE, SPEC, NEXUS],
                  ScanRecorder=["SPEC_FileRecorder", "RedisBlissRecorder", "RedisBlissRecorder"],
                  RedisSession=f"bl{i}")
        numbers.append(last_scan_id(door) + 1)
    runs = [door.start("timescan", POINTS - 1, 0.02) for door in beamlines.doors]

    def recorded(i: int) -> int:
        return len(spec_points(dirs[i] / ORACLE).get(numbers[i], []))

    wait_for(lambda: all(recorded(i) >= BEFORE for i in range(BEAMLINES)),
             f"{BEFORE} points recorded by every Sardana", 120)
    # the points published before the fault, and a margin of 5 points (100 ms) for those in
    # flight: a point numbered after that was measured after the primary's death
    after = points_in_redis(beamlines.url, scan_key(beamlines.url, numbers[0], "bl1")) + 5
    killed_at = beamlines.redis.kill_primary()
    written = lambda: max(spec_points(dirs[0] / SPEC).get(numbers[0], [-1]), default=-1)  # noqa: E731
    wait_for(lambda: written() >= after, "a point measured after the fault written",
             60)
    written_after = time.monotonic() - killed_at
    for run in runs:
        assert run.wait(300).ok

    published = {}
    for i, (scan_dir, number) in enumerate(zip(dirs, numbers), 1):
        scan, count = written_scan(beamlines.url, scan_dir, number, WRITERS, timeout=120,
                                   session=f"bl{i}")
        measured = oracle_rows(scan_dir, number)
        assert count == measured, "everything Sardana measured is published"
        assert scan.info["end_reason"] == "SUCCESS"
        published.update(dict.fromkeys(file_refs(scan_dir, number), measured))
    result = reliability.record(tally(
        "Redis primary SIGKILLed during 3 Sardana scans (Sentinel failover)", published,
        note="in = points in Sardana's own SPEC files; 2 replicas, 3 sentinels"))
    result.figures["first point written after the fault"] = f"{written_after:.1f} s"
    assert result.clean, result
    assert result.scans_out == 2 * BEAMLINES
