"""Reliability, Redis high availability: the primary dies, or is failed over, during scans.

A Redis managed by Sentinel (:class:`~sardana_redis.local_stack.redis_ha.RedisHA`: a
primary, replicas, 3 sentinels, down-after-milliseconds 2000), both writers and the memory
tracker as processes, three scans published at once by the recorder's own publisher; every
service is given the ``redis+sentinel://`` URL. Counted as in every reliability case:
points pushed into the publishers versus rows in the files, 0 lost and 0 duplicated.
The case with three real Sardana scans is in ``test_failover_sardana.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.scan_model import EndReason, ScanEnd
from sardana_redis.local_stack.redis_server import RedisStackServer
from tests.reliability.accounting import spec_points, tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    LiveScan,
    Pusher,
    ServiceStack,
    assert_running,
    stacks,
    wait_for,
)

#: Seconds of scanning before and after the fault.
BEFORE, AFTER = (10.0, 20.0) if full_scale() else (2.0, 3.0)
RATE = 500.0 if full_scale() else 200.0  #: points per second and scan
SCANS = 3
#: Cases that run in make reliability only (about 30 s each; make test keeps its budget).


def first_point_after(scan: LiveScan, pushed_before: int, timeout: float = 30.0) -> float:
    """Wait until the SPEC file holds a point of ``scan`` pushed after the fault (number
    ``pushed_before`` or more); when that was (monotonic time)."""
    path = scan.files["spec"]
    wait_for(lambda: max(spec_points(path).get(scan.number, [-1]), default=-1) >= pushed_before,
             timeout, f"a point of scan #{scan.number} pushed after the fault written", poll=0.05)
    return time.monotonic()


def scans_across(stack: ServiceStack, fault: Callable[[RedisHA], object], spectrum: int = 0,
                 replicated: bool = True) -> tuple[list[LiveScan], float]:
    """Three scans into files of their own (the last one with a 1D channel of ``spectrum``
    points, if any), ``fault`` done in the middle; the scans (all ended) and the seconds
    from the fault to the first point written after it. ``replicated``: a replica is left
    to acknowledge the scans, so their publishers end (else they keep them, CONFIRMING)."""
    live = [stack.scan(n, name=f"scan{n}", spectrum=spectrum if n == SCANS else 0)
            for n in range(1, SCANS + 1)]
    with Pusher(live, rate=RATE):
        wait_for(lambda: spec_points(live[0].files["spec"]).get(1), 30, "points written")
        time.sleep(BEFORE)
        pushed = live[0].pushed
        struck = time.monotonic()
        fault(stack.redis)
        written_after = first_point_after(live[0], pushed) - struck
        time.sleep(AFTER)
    for scan in live:
        closed = scan.finish(wait=60 if replicated else 5)
        assert closed == replicated, (scan.number, scan.publisher.state, scan.publisher.problem)
    return live, written_after


def account(stack: ServiceStack, case: str, live: list[LiveScan], reliability,
            written_after: float, note: str = ""):
    stack.wait_written([scan.key for scan in live], timeout=90)
    assert_running(stack)
    published = {ref: n for scan in live for ref, n in scan.refs().items()}
    result = reliability.record(tally(case, published, note=note))
    result.figures["first point written after the fault"] = f"{written_after:.1f} s"
    return result


def kill_primary(ha: RedisHA) -> RedisStackServer:
    old = ha.primary()
    ha.kill_primary()
    return old


def test_primary_killed_during_scans(stacks, reliability):
    """The primary SIGKILLed while three scans publish and both writers write: a replica is
    promoted, the publishers send it what it lacks from their spools, the writers go on
    from their ledgers; every point is in the files exactly once."""
    stack = stacks("ha", replicas=2)
    stack.start_all()
    live, written_after = scans_across(stack, kill_primary)
    result = account(stack, "Redis primary SIGKILLed during 3 scans (Sentinel failover)",
                     live, reliability, written_after, note="2 replicas, 3 sentinels")
    assert result.clean, result
    assert result.scans_out == 2 * SCANS
    assert all(scan.publisher.state.name == "CLOSED" for scan in live)


def test_planned_failover_during_scans(stacks, reliability):
    """``SENTINEL FAILOVER`` while three scans publish: the old primary is demoted (its
    clients dropped), every component goes on with the new one."""
    stack = stacks("ha", replicas=1)
    stack.start_all()
    live, written_after = scans_across(stack, lambda ha: ha.wait_promoted(ha.failover()))
    result = account(stack, "Planned Sentinel failover during 3 scans", live, reliability,
                     written_after, note="1 replica, 3 sentinels")
    assert result.clean, result
    assert all(scan.publisher.state.name == "CLOSED" for scan in live)


def test_lagging_replica_promoted(stacks, reliability):
    """The only replica is frozen (SIGSTOP) for 2.5 s while the scans publish (one with
    spectra), the primary is killed, the replica thawed and promoted. The publishers, whose
    rounds the frozen replica did not acknowledge, held them in their spools (one round each
    at most went to the primary alone): they send the promoted node what it lacks, in order;
    the writers, whose ledger writes were not acknowledged either, waited. Nothing lost,
    nothing written twice; the publishers keep their scans until a replica holds them again:
    the killed node, restarted as a replica."""
    stack = stacks("ha", replicas=1, maxmemory="400mb")
    stack.start_all()
    lag: dict = {}

    def lagging_replica_then_kill(ha: RedisHA) -> None:
        replica = ha.replicas()[0]
        ha.pause(replica)
        time.sleep(2.5)
        with redis.Redis(port=ha.primary().port) as client:
            offset = client.info("replication")["master_repl_offset"]
        lag["killed"] = kill_primary(ha)
        ha.resume(replica)
        time.sleep(0.5)  # it reads what its socket had
        with redis.Redis(port=replica.port) as client:
            lag["bytes"] = offset - client.info("replication")["master_repl_offset"]

    live, written_after = scans_across(stack, lagging_replica_then_kill, spectrum=4000,
                                       replicated=False)
    assert all(scan.publisher.state.name != "CLOSED" for scan in live)  # no replica to confirm
    stack.redis.restart(lag["killed"])  # a replica again: the publishers' WAIT is answered
    for scan in live:
        wait_for(lambda s=scan: s.publisher.state.name == "CLOSED", 60,
                 f"scan #{scan.number} confirmed by a replica")
    result = account(stack, "Lagging replica promoted after the primary died", live,
                     reliability, written_after, note="1 replica, frozen 2.5 s before")
    result.figures["replica behind"] = f"{max(lag['bytes'], 0) / 1e3:.0f} kB"
    assert result.clean, result


def test_primary_killed_while_its_replica_is_frozen(stacks, reliability):
    """A scan ends while the only replica is frozen: its last round is not acknowledged, so
    the publisher keeps it (and the close) in its spool; the primary is killed, the replica
    promoted: the publisher sends it what it lacks and closes the scan there, and forgets the
    scan only once a replica (the old primary, back) acknowledged the close."""
    stack = stacks("ha", replicas=1, maxmemory="400mb")
    stack.start_all()
    ha = stack.redis
    scan = stack.scan(1, name="frozen", spectrum=4000)
    scan.push(50)
    wait_for(lambda: spec_points(scan.files["spec"]).get(1), 30, "first points written")
    replica, primary = ha.replicas()[0], ha.primary()
    ha.pause(replica)
    scan.push(500)
    scan.publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS), 5)
    assert scan.publisher.state.name != "CLOSED", "closed without a replica's acknowledgement"
    struck = ha.kill_primary()
    ha.resume(replica)
    ha.wait_promoted(primary)
    time.sleep(2)  # without a replica, nothing is confirmed: the scan is not forgotten
    assert scan.publisher.state.name != "CLOSED"
    ha.restart(primary)  # a replica again: the publisher's and the writers' WAIT answered
    stack.wait_written([scan.key], timeout=90)
    written_after = time.monotonic() - struck
    wait_for(lambda: scan.publisher.state.name == "CLOSED", 60, "confirmed by a replica")
    assert_running(stack)
    result = reliability.record(tally("Primary killed while its only replica was frozen, "
                                      "at a scan's end", scan.refs(), note="1 replica"))
    result.figures["scan written after the fault"] = f"{written_after:.1f} s"
    assert result.clean, result
