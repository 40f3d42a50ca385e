"""Reliability, the publisher's side of Redis faults: Redis frozen, down when a scan
starts, full while a writer is slow, and a spool that cannot be written.

Real Redis Stack, real writers and tracker; scans published by the recorder's own
ScanPublisher. "In" is what was pushed into the publishers (what Sardana measured), never
what reached Redis: every case counts the points in the files against it.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from sardana_redis.publishing.spool import Spool
from tests.reliability.accounting import tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    LiveScan,
    Pusher,
    assert_running,
    points_in_redis,
    spec_headers,
    stacks,
    wait_for,
)

FREEZES = [15.0, 180.0] if full_scale() else [15.0]


def published(*scans: LiveScan) -> dict:
    return {ref: n for s in scans for ref, n in s.refs().items()}


def notices(scan: LiveScan) -> list[str]:
    return [text for _, text in scan.publisher.notices()]


@pytest.mark.parametrize("freeze", FREEZES, ids=lambda f: f"{f:.0f}s")
def test_redis_frozen_during_scans(freeze, stacks, reliability):
    """Redis SIGSTOPped (a stuck host, a long fork) while two scans run, then SIGCONT:
    the publishers keep buffering, the scans go on, and once Redis answers every point
    is in both files, once; the tracker does not close the scans for the silence."""
    stack = stacks()
    stack.start_all("--publisher-timeout", "10")
    scans = [stack.scan(n, f"frozen{n}") for n in (1, 2)]
    with Pusher(scans, rate=100):
        time.sleep(1.0)
        os.kill(stack.redis.process.pid, signal.SIGSTOP)
        time.sleep(freeze)
        held = scans[0].publisher.points_held
        os.kill(stack.redis.process.pid, signal.SIGCONT)
        thawed = time.monotonic()
        time.sleep(1.0)
    closed = [s.finish(wait=90) for s in scans]
    stack.wait_written([s.publisher.key for s in scans], timeout=90)
    result = reliability.record(tally(f"Redis frozen (SIGSTOP) {freeze:.0f} s during 2 scans",
                                      published(*scans)))
    result.figures.update({"points held by a publisher at the thaw": str(held),
                           "all written": f"{time.monotonic() - thawed:.1f} s after the thaw"})
    assert result.clean, result
    assert all(closed) and held > 0
    texts = notices(scans[0])
    assert any("Redis unreachable: buffering locally" in t for t in texts), texts
    assert any("caught up" in t for t in texts), texts
    for scan in scans:
        assert scan.publisher.points_lost == 0
        assert spec_headers(scan.files["spec"], scan.number) == 1
    assert_running(stack)


def test_redis_down_when_a_scan_starts(stacks, reliability):
    """The scan starts while Redis is down and Redis comes back during it: the scan is
    created as soon as Redis answers, with all its points, and written whole."""
    stack = stacks()
    scan = stack.scan(1, "late")
    scan.push(150)
    time.sleep(2.5)  # the publisher retries meanwhile
    assert scan.publisher.key is None and scan.publisher.points_held == 150
    stack.start_all()
    back = time.monotonic()
    with Pusher([scan], rate=100):
        time.sleep(1.5)
    assert scan.finish(wait=90)
    stack.wait_written([scan.publisher.key], timeout=90)
    result = reliability.record(tally("Redis down when a scan starts, back during it",
                                      published(scan)))
    result.figures["scan written"] = f"{time.monotonic() - back:.1f} s after Redis started"
    assert result.clean, result
    assert any("Redis unreachable" in t for t in notices(scan))


def test_redis_full_with_a_slow_writer(stacks, reliability):
    """A small Redis fills up while the NeXus writer is stalled (SIGSTOP): the memory
    tracker may not free unsaved data, so Redis refuses writes (OOM); the publishers
    back off and retry, and once the writer goes on every point is in both files."""
    stack = stacks(maxmemory="24mb")
    stack.start_all("--cleaning-threshold", "60")
    writer = stack.services["nexus-writer"]
    os.kill(writer.process.pid, signal.SIGSTOP)
    try:
        scans = [stack.scan(n, f"full{n}", spectrum=2048) for n in (1, 2)]
        for _ in range(40):
            for scan in scans:
                scan.push(25)
            time.sleep(0.05)
        wait_for(lambda: any("full" in (s.publisher.problem or "") for s in scans), 60,
                 "Redis refuses writes")
        held = max(s.publisher.points_held for s in scans)
    finally:
        os.kill(writer.process.pid, signal.SIGCONT)
    resumed = time.monotonic()
    closed = [s.finish(wait=120) for s in scans]
    stack.wait_written([s.publisher.key for s in scans], timeout=120)
    result = reliability.record(tally("Redis full (24 MB) while the NeXus writer is stalled",
                                      published(*scans)))
    result.figures.update({"points held by a publisher while Redis was full": str(held),
                           "all written": f"{time.monotonic() - resumed:.1f} s after the "
                                          "writer went on"})
    assert result.clean, result
    assert all(closed) and held > 0
    assert all(s.publisher.points_lost == 0 for s in scans)
    assert_running(stack)


def test_spool_not_writable_and_memory_full(stacks, reliability, tmp_path):
    """The only case that may lose points: the spool folder cannot be written AND Redis is
    away for longer than the memory part holds. The scan goes on; the user is told, the
    points lost are counted, and the files hold exactly the others, once."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    stack = stacks(persistence=True)
    stack.start_all()
    scan = stack.scan(1, "nospool", spool=Spool(blocked / "spool"), memory_limit=4096)
    scan.push(50)
    wait_for(lambda: points_in_redis(stack.url, scan.key) == 50, 30, "50 points in Redis")
    stack.redis.stop()
    for _ in range(20):
        scan.push(10)
        time.sleep(0.05)
    stack.start_redis()
    scan.push(50)
    closed = scan.finish(wait=90)
    lost = scan.publisher.points_lost
    stack.wait_written([scan.publisher.key], timeout=90)
    result = reliability.record(tally(
        "spool folder not writable, Redis down longer than memory holds (4 kB)",
        published(scan), note="lost = counted by the publisher and told to the user"))
    result.figures["points lost, as reported to the user"] = str(lost)
    texts = notices(scan)
    assert closed
    assert lost > 0 and result.lost == 2 * lost and result.duplicated == 0, result
    assert any("cannot be written" in t for t in texts), texts
    assert any("points lost" in t for t in texts), texts
    assert_running(stack)
