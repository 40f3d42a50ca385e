"""Reliability, fault cases on the Redis and service side: Redis restarted (with and
without persistence), a writer killed, the memory tracker killed under memory pressure.

Real Redis Stack servers, real writer and tracker processes, scans published by the
recorder's own ScanPublisher; every case counts the points in the files
(:func:`~tests.reliability.accounting.tally`). The full disk case is in
``test_faults_disk.py``.
"""

from __future__ import annotations

import time

import pytest

from sardana_redis.scan_model import EndReason
from tests.reliability.accounting import spec_points, tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (
    WRITERS,
    LiveScan,
    Pusher,
    ServiceStack,
    points_in_redis,
    wait_for,
)

POINTS = 2000 if full_scale() else 200


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


def whole_scan(stack: ServiceStack, number: int, name: str = "scans", points: int = POINTS) -> LiveScan:
    """A scan published at once and closed (SUCCESS)."""
    scan = stack.scan(number, name)
    scan.push(points)
    assert scan.finish(), scan.publisher.problem
    return scan


def in_redis(stack: ServiceStack, scan: LiveScan, points: int) -> None:
    """Wait until Redis holds ``points`` points of ``scan``."""
    wait_for(lambda: points_in_redis(stack.url, scan.key) >= points, 30,
             f"{points} points of scan #{scan.number} in Redis")


def restart_redis(stack: ServiceStack, kill: bool) -> float:
    """Stop (SIGTERM) or kill (SIGKILL) Redis, start it again on its port and data;
    returns when it was back (monotonic time)."""
    if kill:
        stack.redis.kill()
    else:
        stack.redis.stop()
    stack.start_redis()
    return time.monotonic()


def assert_running(stack: ServiceStack) -> None:
    """No service process died."""
    dead = {name: s.proc.returncode for name, s in stack.services.items() if s.proc.poll() is not None}
    assert not dead, f"services died: {dead}\n{stack.logs()[-5000:]}"


def spec_headers(path: str, number: int) -> int:
    """How many ``#S number`` blocks a SPEC file has."""
    return sum(1 for line in open(path) if line.split()[:2] == ["#S", str(number)])


# --- 1. Redis restarted during scans, with persistence ---------------------------------

PERSISTENT = {
    "SIGTERM, RDB": dict(kill=False, options=()),
}


@pytest.mark.parametrize("variant", list(PERSISTENT))
def test_redis_restarted_with_persistence(variant, stacks, reliability):
    """Redis restarted (same port, same data) while two scans run: every point Redis
    accepted is in both files, once; the services go on by themselves."""
    kill, options = PERSISTENT[variant]["kill"], PERSISTENT[variant]["options"]
    stack = stacks(persistence=True, redis_options=options)
    stack.start_all()
    before = whole_scan(stack, 1)
    cut = [stack.scan(n, f"cut{n}") for n in (2, 3)]
    with Pusher(cut):
        time.sleep(0.5)
        back = restart_redis(stack, kill)
        time.sleep(0.5)
    for scan in cut:
        scan.finish(wait=30)
    after = whole_scan(stack, 4)
    keys = [s.key for s in (before, *cut, after)]
    stack.wait_written(keys, timeout=90)
    recovered = time.monotonic() - back
    kept = {scan.number: points_in_redis(stack.url, scan.key) for scan in cut}
    published = {**before.refs(), **after.refs()}
    for scan in cut:
        published.update(scan.refs(kept[scan.number]))
    result = reliability.record(tally(
        f"Redis restarted during 2 scans ({variant})", published,
        note="published = points Redis held after the restart"))
    result.figures.update({
        "pushed, not in Redis (dropped by the publisher)":
            str(sum(s.pushed for s in cut) - sum(kept.values())),
        "all written": f"{recovered:.1f} s after Redis was back"})
    assert result.clean, result
    assert all(kept.values()), kept
    assert_running(stack)
    for scan in (before, *cut, after):
        assert spec_headers(scan.files["spec"], scan.number) == 1


# --- 2. Redis restarted without persistence -----------------------------------------------

def test_redis_restarted_without_persistence(stacks, reliability):
    """What only Redis held is gone (the scans the stopped NeXus writer had not written);
    what the files had stays intact, nothing is written twice, the services go on with
    the next scans and the publisher of the scan running then gives up without blocking."""
    stack = stacks(persistence=False)
    stack.start_all()
    before = whole_scan(stack, 1)
    stack.wait_written([before.key])
    stack.services["nexus-writer"].stop()  # from now on, NeXus data is only in Redis
    unsaved = whole_scan(stack, 2)
    cut = stack.scan(3, "cut")
    cut.push(POINTS // 2)
    in_redis(stack, cut, POINTS // 2)
    wait_for(lambda: len(spec_points(cut.files["spec"]).get(3, [])) == POINTS // 2, 30,
             "the SPEC writer wrote what Redis holds of the running scan")
    back = restart_redis(stack, kill=False)
    cut.push(POINTS // 2)  # Redis lost the scan: dropped by the publisher
    closed = cut.finish(wait=10)
    stack.start_writer("nexus-writer")
    after = whole_scan(stack, 4)
    stack.wait_written([after.key], timeout=60)
    recovered = time.monotonic() - back
    gone = wait_for(lambda: "is gone from Redis" in stack.services["spec-writer"].log(), 30,
                    "the SPEC writer reports the running scan lost")

    published = {**before.refs(), **unsaved.refs(), **cut.refs(POINTS // 2), **after.refs()}
    result = reliability.record(tally(
        "Redis restarted without persistence (NeXus writer stopped)", published,
        note="lost = what only Redis held: the 2 scans the stopped NeXus writer had not written"))
    result.figures.update({
        "pushed after the restart, dropped by the publisher": str(POINTS // 2),
        "next scan written": f"{recovered:.1f} s after Redis was back",
        "publisher finish()": "closed" if closed else "returned after its wait"})
    only_in_redis = {ref for ref in published if ref[0] == "nexus" and ref[2] in (2, 3)}
    assert result.lost == sum(published[ref] for ref in only_in_redis), result
    assert result.duplicated == 0, result
    assert gone
    assert cut.publisher.problem, "the publisher tells the scan something went wrong"
    assert_running(stack)
    for scan in (before, unsaved, cut, after):
        assert spec_headers(scan.files["spec"], scan.number) == 1
