"""The SPEC writer service: restarts, crashes, redundancy, concurrency and hostile scans."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from sardana_redis.following.ledger import WriterLedger

from tests.publish import FakeScan, publish
from tests.services import (
    free_saved_points,
    roll_back_ledger,
    wait_done,
    wait_saved_points,
    writer_process,
)
from tests.spec_files import read_spec

WRITER = "spec-writer"


def writer(redis_url, root, tmp_path, name="a"):
    return writer_process(WRITER, redis_url, root, tmp_path / f"writer-{name}.log")


def data_lines(path):
    text = path.read_text() if path.exists() else ""
    return sum(1 for line in text.splitlines() if line[:1].isdigit())


def numbers(path):
    return [s.number for s in read_spec(path)]


def test_scans_published_while_down_are_written_on_restart(redis_url, root, tmp_path):
    service = writer(redis_url, root, tmp_path).start()
    first = publish(redis_url, 1, [str(root / "s.dat")])
    assert wait_done(redis_url, first, WRITER).status == "written"
    service.stop()

    keys = [publish(redis_url, n, [str(root / "s.dat")]) for n in (2, 3)]

    service = writer(redis_url, root, tmp_path, "b").start()
    try:
        for key in keys:
            assert wait_done(redis_url, key, WRITER).status == "written"
    finally:
        service.stop()
    assert numbers(root / "s.dat") == [1, 2, 3]
    assert [len(s.rows) for s in read_spec(root / "s.dat")] == [5, 5, 5]


def test_killed_mid_scan_then_restarted_writes_one_complete_block(redis_url, root, tmp_path):
    """The restarted writer goes on after the points on disk, which the memory tracker
    may already have freed from Redis."""
    service = writer(redis_url, root, tmp_path).start()
    scan = FakeScan(redis_url, 7, [str(root / "k.dat")])
    for _ in range(5):
        scan.send(10)
    saved = wait_saved_points(redis_url, scan.key(), WRITER, 50)
    service.kill()
    with (root / "k.dat").open("a") as f:
        f.write("51 5.")  # a line cut by the crash
    free_saved_points(redis_url, scan.key(), saved)
    scan.send(50)
    scan.end()

    service = writer(redis_url, root, tmp_path, "b").start()
    try:
        record = wait_done(redis_url, scan.key(), WRITER, timeout=60)
    finally:
        service.stop()
    assert record.status == "written" and record.points == 100
    blocks = read_spec(root / "k.dat")
    assert [b.number for b in blocks] == [7]
    pt_no = blocks[0].labels.index("Pt_No")
    assert [row[pt_no] for row in blocks[0].rows] == list(range(100))
    assert (root / "k.dat").read_text().count("#F ") == 1


def test_ledger_rolled_back_by_a_snapshot_leaves_whole_blocks_alone(redis_url, root, tmp_path):
    """Redis restored from an older snapshot forgets that scan #1 was written: the writer
    must not cut into its block, nor into scan #2's block after it."""
    path = root / "r.dat"
    service = writer(redis_url, root, tmp_path).start()
    first = publish(redis_url, 1, [str(path)], points=20)
    wait_done(redis_url, first, WRITER)
    wait_done(redis_url, publish(redis_url, 2, [str(path)], points=20), WRITER)
    service.stop()
    before = path.read_text()
    roll_back_ledger(redis_url, WRITER, first, {str(path): before.index("\n#S 1 ")}, 10)

    service = writer(redis_url, root, tmp_path, "b").start()
    assert wait_done(redis_url, first, WRITER).detail == "already whole in its files"
    service.stop()
    assert path.read_text() == before


def test_two_instances_write_each_scan_once(redis_url, root, tmp_path):
    services = [writer(redis_url, root, tmp_path, n).start() for n in ("a", "b")]
    try:
        keys = [publish(redis_url, n, [str(root / f"r{n % 3}.dat")], points=20) for n in range(1, 13)]
        for key in keys:
            assert wait_done(redis_url, key, WRITER).status == "written"
    finally:
        for service in services:
            service.stop()
    written = sorted(n for i in range(3) for n in numbers(root / f"r{i}.dat"))
    assert written == list(range(1, 13))  # (which instance wins each scan is up to timing)


def test_concurrent_scans_to_one_file_never_interleave(redis_url, root, tmp_path):
    service = writer(redis_url, root, tmp_path).start()
    try:
        a = FakeScan(redis_url, 1, [str(root / "c.dat")], session="bl-a")
        b = FakeScan(redis_url, 2, [str(root / "c.dat")], session="bl-b")
        for _ in range(5):
            a.send(3)
            b.send(4)
        b.end()
        a.end()
        for scan, points in ((a, 15), (b, 20)):
            assert wait_done(redis_url, scan.key(), WRITER).points == points
    finally:
        service.stop()
    blocks = read_spec(root / "c.dat")
    assert [(s.number, len(s.rows)) for s in blocks] == [(1, 15), (2, 20)]


@pytest.mark.parametrize("bad", [
    {"files": ["/etc/passwd.dat"]},
    {"files": ["{root}/../escape.dat"]},
    {"files": ["{root}/link/escape.dat"], "symlink": True},
    {"info": {"sardana": "not a mapping"}},
    {"info": {"sardana": {"requested_files": "nope"}}},
    {"info": {"title": 42}},
    {"streams": {}},
    {"info": {"sardana": {"columns": [{"stream": "ghost", "label": 5}, "junk"],
                          "requested_files": [{"path": "{root}/h.dat"}]}}},
])
def test_hostile_scan_is_rejected_and_the_next_one_written(bad, redis_url, root, tmp_path):
    if bad.get("symlink"):
        (root / "link").symlink_to(tmp_path)
    service = writer(redis_url, root, tmp_path).start()
    try:
        files = [f.format(root=root) for f in bad.get("files", [str(root / "h.dat")])]
        hostile = publish(redis_url, 1, files, info=bad.get("info"), streams=bad.get("streams"))
        good = publish(redis_url, 2, [str(root / "good.dat")])
        record = wait_done(redis_url, hostile, WRITER)
        assert record.status == "failed", record
        assert record.detail
        assert wait_done(redis_url, good, WRITER).status == "written"
    finally:
        service.stop()
    assert numbers(root / "good.dat") == [2]
    assert not (tmp_path / "escape.dat").exists()
    assert " refused: " in service.log()


@pytest.fixture
def immutable():
    """Makes a file immutable (``chattr +i``: even root cannot write it) until the test ends
    or it is given back; skipped where chattr is refused."""
    made = []

    def make(path):
        out = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if out.returncode:
            pytest.skip(f"chattr +i refused: {out.stderr.strip()}")
        made.append(path)
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_file_not_writable_for_a_while_is_waited_for(redis_url, root, tmp_path, immutable):
    """A file that cannot be opened for writing now (PermissionError) is waited for, the
    scan kept pending (in Redis), and written whole once it can be."""
    service = writer(redis_url, root, tmp_path).start()
    path = root / "w.dat"
    assert wait_done(redis_url, publish(redis_url, 1, [str(path)]), WRITER).status == "written"
    give_back = immutable(path)
    key = publish(redis_url, 2, [str(path)])
    waiting = f"waiting for {path}: not writable (Operation not permitted)"
    deadline = time.monotonic() + 30
    while waiting not in service.log():
        assert time.monotonic() < deadline and "failed" not in service.log(), service.log()
        time.sleep(0.1)
    time.sleep(1.5)
    assert WriterLedger(redis.Redis.from_url(redis_url), WRITER).done(key) is None
    give_back()
    assert wait_done(redis_url, key, WRITER).status == "written"
    service.stop()
    assert numbers(path) == [1, 2]
    assert [len(s.rows) for s in read_spec(path)] == [5, 5]
    assert service.log().count(waiting) == 1
    assert f"{path} can be written again" in service.log()


def test_scans_beyond_max_scans_wait_pending_then_are_written(redis_url, root, tmp_path):
    """``--max-scans 1``: while an open scan holds the only place, the next scan waits
    (pending, logged once) and is written as soon as the open one ends."""
    service = writer(redis_url, root, tmp_path)
    service.args += ["--max-scans", "1"]
    service.start()
    try:
        open_scan = FakeScan(redis_url, 1, [str(root / "open.dat")])
        open_scan.send(3)
        wait_saved_points(redis_url, open_scan.key(), WRITER, 3)
        waiting = publish(redis_url, 2, [str(root / "next.dat")])
        ledger = WriterLedger(redis.Redis.from_url(redis_url), WRITER)
        time.sleep(1.5)
        assert ledger.done(waiting) is None and waiting in ledger.pending()
        open_scan.end()
        assert wait_done(redis_url, waiting, WRITER).status == "written"
        assert wait_done(redis_url, open_scan.key(), WRITER).status == "written"
        assert "scans being written (--max-scans)" in service.log()
    finally:
        service.stop()
    assert [len(s.rows) for s in read_spec(root / "next.dat")] == [5]
    assert [len(s.rows) for s in read_spec(root / "open.dat")] == [3]
