"""Reliability, the writers' own limits (issue 13): scans that stay open never starve the
others, a file lock never outlives its scan, every scan Redis still holds after a long
downtime is written (not only those blissdata's capped scan history names), and a writer
that is gone cannot stop the memory tracker's cleanup for ever.

Real Redis Stack servers, real writer and tracker processes; every case counts the
points in the files against what was pushed into the publishers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import redis
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.memory_tracker import scan_keys
from tests.reliability.accounting import tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    WRITERS,
    LiveScan,
    ServiceStack,
    assert_running,
    spec_headers,
    stacks,
    wait_for,
)
from tests.services import wait_saved_points, writer_process

POINTS = 200


def whole_scan(stack: ServiceStack, number: int, name: str, points: int = POINTS) -> LiveScan:
    """A scan published at once and closed (SUCCESS)."""
    scan = stack.scan(number, name)
    scan.push(points)
    assert scan.finish(), scan.publisher.problem
    return scan


# --- 1. open scans never starve the others -----------------------------------------------

def test_open_scans_do_not_starve_the_others(stacks, reliability):
    """More scans stay open without data (publishers alive, scans waiting) than the old
    pool of 16 workers: scans published meanwhile are written at once all the same."""
    opened = 40 if full_scale() else 20
    stack = stacks()
    stack.start_all()
    waiting = [stack.scan(n, f"open{n}") for n in range(1, opened + 1)]
    keys = [scan.key for scan in waiting]
    client = redis.Redis.from_url(stack.url)
    wait_for(lambda: all(client.exists(f"sardana_redis:writer:{w}:claim:{k}")
                         for w in WRITERS for k in keys), 60,
             "every writer holds every open scan")
    start = time.monotonic()
    normal = [whole_scan(stack, opened + n, f"normal{n}") for n in (1, 2, 3)]
    stack.wait_written([s.key for s in normal], timeout=30)
    written_in = time.monotonic() - start
    for scan in waiting:  # the open scans end after all
        scan.push(10)
        assert scan.finish(), scan.publisher.problem
    stack.wait_written(keys, timeout=90)

    published = {ref: n for s in (*waiting, *normal) for ref, n in s.refs().items()}
    result = reliability.record(tally(
        f"{opened} scans stay open without data while 3 others run", published))
    result.figures["3 other scans written"] = f"{written_in:.1f} s after they started"
    assert result.clean, result
    assert_running(stack)


# --- 2. a file lock never outlives its scan ------------------------------------------------

def test_lock_of_a_scan_deleted_while_the_writers_are_down(stacks, reliability):
    """A scan holding its files' locks is deleted from Redis while both writers are
    stopped (the tracker freed it, an operator deleted it): on restart the next scan into
    the same files is written after the points the first one had on disk."""
    stack = stacks()
    stack.start_all()
    first = stack.scan(1, "shared")
    first.push(POINTS)
    for writer in WRITERS:
        wait_saved_points(stack.url, first.key, writer, POINTS)
    for writer in WRITERS:
        stack.services[writer].stop()
    assert first.finish(), first.publisher.problem
    client = redis.Redis.from_url(stack.url)
    scan, = scan_keys.load_keys(client, [(first.key, 0)])
    scan_keys.delete(client, [scan])
    for writer in WRITERS:
        stack.start_writer(writer)
    restarted = time.monotonic()
    second = whole_scan(stack, 2, "shared")
    records = stack.wait_written([second.key], timeout=60)
    written_in = time.monotonic() - restarted

    published = {**first.refs(), **second.refs()}
    result = reliability.record(tally(
        "scan holding a file lock deleted while the writers were stopped", published,
        note="the first scan's points were on disk before the stop"))
    result.figures["next scan into the file written"] = f"{written_in:.1f} s after the restart"
    assert result.clean, result
    assert all(r.status == "written" for r in records.values()), records
    assert "taken over by scan" in stack.logs()
    assert spec_headers(second.files["spec"], 2) == 1
    assert_running(stack)


# --- 3. after a long downtime, every scan still in Redis is written ----------------------------

def small_scans(url: str, root: Path, count: int, files: int) -> list[tuple[str, str, int]]:
    """``count`` closed scans of 2 points published with blissdata (one DataStore: fast),
    scan n into ``root/many<n % files>.{dat,h5}``: [(key, file name, number)]."""
    store = DataStore(url)
    out = []
    for n in range(1, count + 1):
        name = f"many{n % files}"
        info = {"title": f"ascan mot01 0 1 1 0.1 #{n}", "start_time": "2026-01-01T00:00:00+00:00",
                "sardana": {"requested_files": [
                    {"path": str(root / f"{name}.dat"), "format": "spec"},
                    {"path": str(root / f"{name}.h5"), "format": "nexus"}]}}
        scan = store.create_scan({"name": "ascan", "number": n, "data_policy": "no_policy",
                                  "session": "faults"}, info=info)
        streams = [scan.create_stream(Stream.make_definition(name, dtype, ()))
                   for name, dtype in (("#Pt No", "int64"), ("mot01", "float64"))]
        scan.prepare()
        scan.start()
        for stream in streams:
            stream.send(np.arange(2).astype(stream.dtype))
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()
        out.append((scan.key, name, n))
    return out


def test_scans_beyond_the_capped_history(stacks, reliability):
    """Both writers and the tracker stopped while more scans are published than
    blissdata's scan history keeps: on restart every scan is written and tracked
    (expiration set), the oldest ones found by blissdata's search. Full scale: 2,300
    scans, blissdata's own cap (XADD MAXLEN ~2048); quick: 400 scans and the history
    trimmed to its last 200 entries as blissdata trims it."""
    count, files = (2300, 23) if full_scale() else (400, 8)
    stack = stacks()
    stack.start_all()
    for name in (*WRITERS, "memory-tracker"):
        stack.services[name].stop()
    client = redis.Redis.from_url(stack.url)
    scans = small_scans(stack.url, stack.root, count, files)
    if not full_scale():
        client.xtrim(scan_keys.SCAN_HISTORY, maxlen=200, approximate=False)
    keys = [key for key, _, _ in scans]
    history = client.xlen(scan_keys.SCAN_HISTORY)
    assert history < count
    start = time.monotonic()
    for writer in WRITERS:
        stack.start_writer(writer)
    stack.start_tracker()
    stack.wait_written(keys, timeout=240)
    written_in = time.monotonic() - start
    wait_for(lambda: all(client.ttl(k) > 0 for k in keys), 60,
             "the tracker expires every scan (it tracks them all)")

    published = {(kind, str(stack.root / f"{name}.{ext}"), n): 2
                 for _, name, n in scans for kind, ext in (("spec", "dat"), ("nexus", "h5"))}
    result = reliability.record(tally(
        f"{count} scans published while both writers and the tracker were down", published,
        note=f"the scan history keeps {history}: the others found by search"))
    result.figures["all written"] = f"{written_in:.0f} s after the restart"
    assert result.clean, result
    assert_running(stack)


# --- 4. a dead writer cannot stop cleanup for ever ---------------------------------------------

def test_writer_gone_for_good(stacks, reliability):
    """A third writer followed this Redis once and is gone: past --writer-grace the
    tracker expires the scans the two live writers wrote, naming the gone one."""
    stack = stacks()
    stack.start_redis()
    tracker = ServiceProcess("memory-tracker", ["--redis-url", stack.url, "--monitoring-period",
                                                "0.5", "--writer-grace", "3", "--init-db"],
                             stack.log_file("memory-tracker"))
    stack.services["memory-tracker"] = tracker.start(ready="INIT | Writers")
    ghost = writer_process("spec-writer", stack.url, stack.root, stack.log_file("ghost"))
    ghost.args += ["--name", "ghost"]
    ghost.start()
    client = redis.Redis.from_url(stack.url)
    wait_for(lambda: client.exists("sardana_redis:writer:ghost:alive"), 30, "the ghost beats")
    ghost.stop()
    for name in WRITERS:
        stack.start_writer(name)
    scans = [whole_scan(stack, n, "kept") for n in (1, 2, 3)]
    keys = [s.key for s in scans]
    stack.wait_written(keys)
    start = time.monotonic()
    wait_for(lambda: all(client.ttl(k) > 0 for k in keys), 30,
             "the tracker expires the scans without the gone writer")
    expired_in = time.monotonic() - start

    published = {ref: n for s in scans for ref, n in s.refs().items()}
    result = reliability.record(tally(
        "a third writer ran once and is gone (--writer-grace 3 s)", published))
    result.figures["expired"] = f"{expired_in:.1f} s after written"
    assert result.clean, result
    log = tracker.log()
    assert "Writer 'ghost' not alive" in log
    assert all(f"{k} (#" in log and "unwritten by writer(s) ghost" in log for k in keys)
    assert_running(stack)
