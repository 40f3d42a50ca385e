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
import redis

from sardana_redis.following.follower import LEASE
from tests.reliability.accounting import spec_points, tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    WRITERS,
    LiveScan,
    Pusher,
    ServiceStack,
    assert_running,
    points_in_redis,
    spec_headers,
    stacks,
    wait_for,
)
from tests.services import WRITER_LEASE

POINTS = 2000 if full_scale() else 200


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


# --- 1. Redis restarted during scans, with persistence ---------------------------------

AOF = ("--appendonly", "yes", "--appendfsync")
PERSISTENT = {
    "SIGTERM, RDB": dict(kill=False, options=()),
    "SIGKILL, AOF fsync always": dict(kill=True, options=(*AOF, "always")),
    # a killed process loses nothing its last write() gave the kernel: only a host crash
    # can lose the last second of "everysec" (not simulated here)
    "SIGKILL, AOF fsync everysec": dict(kill=True, options=(*AOF, "everysec")),
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
    published = {ref: n for s in (before, *cut, after) for ref, n in s.refs().items()}
    result = reliability.record(tally(
        f"Redis restarted during 2 scans ({variant})", published,
        note="in = points pushed into the publishers (what Sardana measured)"))
    result.figures.update({
        "pushed, not in Redis": str(sum(s.pushed for s in cut) - sum(kept.values())),
        "all written": f"{recovered:.1f} s after Redis was back"})
    assert result.clean, result
    assert all(kept.values()), kept
    assert_running(stack)
    for scan in (before, *cut, after):
        assert spec_headers(scan.files["spec"], scan.number) == 1


# --- 2. Redis restarted without persistence -----------------------------------------------

def test_redis_restarted_without_persistence(stacks, reliability):
    """Redis restarted empty while a scan runs: its publisher publishes it again whole
    from its spool (a new key, ``republished_from`` the lost one) and the writers go on
    after what their files hold: every point Sardana handed over is in both files, once.
    What is lost is only what nobody but Redis held: the closed scan the stopped NeXus
    writer had not written yet."""
    stack = stacks(persistence=False)
    stack.start_all()
    before = whole_scan(stack, 1)
    stack.wait_written([before.key])
    stack.services["nexus-writer"].stop()  # from now on, NeXus data is only in Redis
    unsaved = whole_scan(stack, 2)
    cut = stack.scan(3, "cut")
    cut.push(POINTS // 2)
    in_redis(stack, cut, POINTS // 2)
    lost_key = cut.key
    wait_for(lambda: len(spec_points(cut.files["spec"]).get(3, [])) == POINTS // 2, 30,
             "the SPEC writer wrote what Redis holds of the running scan")
    back = restart_redis(stack, kill=False)
    stack.start_writer("nexus-writer")  # a first start on the empty Redis: from now on
    wait_for(lambda: "Waiting for scan" in stack.services["nexus-writer"].log(), 30,
             "the NeXus writer follows the new Redis")
    cut.push(POINTS // 2)  # the publisher finds the scan gone: published again
    closed = cut.finish(wait=60)
    after = whole_scan(stack, 4)
    stack.wait_written([cut.publisher.key, after.key], timeout=60)
    recovered = time.monotonic() - back

    published = {**before.refs(), **unsaved.refs(), **cut.refs(), **after.refs()}
    result = reliability.record(tally(
        "Redis restarted without persistence (NeXus writer stopped)", published,
        note="in = points pushed into the publishers; lost = the closed scan only Redis "
             "held (the NeXus writer was stopped): nothing else kept it"))
    result.figures.update({
        "running scan": "published again whole from the spool, files go on after their points",
        "next scan written": f"{recovered:.1f} s after Redis was back",
        "publisher finish()": "closed" if closed else "returned after its wait"})
    only_in_redis = {ref for ref in published if ref[0] == "nexus" and ref[2] == 2}
    assert result.lost == sum(published[ref] for ref in only_in_redis), result
    assert result.duplicated == 0, result
    assert closed and cut.publisher.key != lost_key
    assert "published again after Redis lost it" in stack.services["spec-writer"].log()
    assert_running(stack)
    for scan in (before, unsaved, cut, after):
        assert spec_headers(scan.files["spec"], scan.number) == 1


# --- 3. A writer killed while several scans run --------------------------------------------

def test_writers_killed_during_concurrent_scans(stacks, reliability):
    """Both writers SIGKILLed and restarted while three scans run: each scan ends whole
    and once in every file (the restarted instance takes the scans over when their
    leases expire, truncating and rewriting the half-written blocks/entries)."""
    stack = stacks()
    stack.start_all()
    scans = [stack.scan(n, f"concurrent{n}") for n in (1, 2, 3)]
    with Pusher(scans, rate=300):
        time.sleep(3.0 if full_scale() else 0.8)
        for name in WRITERS:
            stack.services[name].kill()
        time.sleep(0.5)
        restarted = time.monotonic()
        for name in WRITERS:
            stack.start_writer(name)
        time.sleep(3.0 if full_scale() else 1.0)
    for scan in scans:
        assert scan.finish(), scan.publisher.problem
    next_scan = whole_scan(stack, 4, "concurrent1")  # into a file a taken-over scan used
    stack.wait_written([s.key for s in (*scans, next_scan)], timeout=90)
    taken_over = time.monotonic() - restarted

    published = {ref: n for s in (*scans, next_scan) for ref, n in s.refs().items()}
    result = reliability.record(tally("both writers SIGKILLed during 3 concurrent scans", published))
    result.figures["all written"] = (f"{taken_over:.1f} s after the restart "
                                     f"({WRITER_LEASE or LEASE:g} s leases)")
    assert result.clean, result
    assert "resuming scan" in stack.logs()  # the half-written blocks were taken over
    assert_running(stack)
    for scan in (*scans, next_scan):
        assert spec_headers(scan.files["spec"], scan.number) == 1


# --- 4. The memory tracker killed under memory pressure --------------------------------

def test_tracker_killed_under_memory_pressure(stacks, reliability):
    """A 40 MB Redis (64 MB at full scale) fed more than its size in spectra by 3 scans; the tracker
    is SIGKILLed and restarted in the middle. Nothing is lost in the files, no unsaved
    data is dropped, no publisher meets Redis' OOM, and the restarted tracker expires
    and frees the saved scans."""
    # full scale: twice the data, for as long as 20 MB/s lasts: more room for writer lag
    maxmemory = 64 if full_scale() else 40
    stack = stacks(maxmemory=f"{maxmemory}mb")
    stack.start_all("--cleaning-threshold", "60")
    rounds, points, published, every, after_restart = (8 if full_scale() else 4), 200, {}, [], []
    for r in range(rounds):
        scans = [stack.scan(3 * r + i + 1, f"load{i}", spectrum=2048) for i in range(3)]
        for _ in range(points // 20):
            for scan in scans:
                scan.push(20)
            time.sleep(0.05)
        if r == rounds // 2 - 1:
            stack.services["memory-tracker"].kill()
            time.sleep(1.0)
            stack.start_tracker("--cleaning-threshold", "60")
        for scan in scans:
            assert scan.finish(), scan.publisher.problem
            published.update(scan.refs())
            every.append(scan.key)
        if r >= rounds // 2:
            after_restart += [s.key for s in scans]
    stack.wait_written(every, timeout=120)
    client = redis.Redis.from_url(stack.url)
    wait_for(lambda: all(client.ttl(k) > 0 or not client.exists(k) for k in after_restart), 30,
             "the restarted tracker expires or frees the scans both writers saved")
    freed = sum(1 for key in every if not client.exists(key))
    tracker_log = "\n".join(p.read_text() for p in stack.workdir.glob("memory-tracker-*.log"))

    result = reliability.record(tally(
        f"memory tracker SIGKILLed under memory pressure ({maxmemory} MB Redis)", published))
    result.figures["published"] = f"{rounds * 3 * points * 2048 * 8 / 1024**2:.0f} MB of spectra"
    result.figures["saved scans freed by the tracker"] = f"{freed} of {len(every)}"
    assert result.clean, result
    assert freed, "the tracker had to free memory"
    assert "DROPPING" not in tracker_log and "OOM" not in stack.logs()
    assert "expiration set" in stack.services["memory-tracker"].log()
    assert_running(stack)
