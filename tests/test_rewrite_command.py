"""``sardana-redis rewrite``: a running writer service writes one scan again from Redis."""

from __future__ import annotations

import subprocess
import sys

import h5py

from tests.nexus_files import entries, nexus_request
from tests.publish import FakeScan, publish
from tests.services import wait_done, writer_process
from tests.spec_files import read_spec

WRITER = "spec-writer"
POINTS = 12


def rewrite(redis_url, *args, wait=30):
    return subprocess.run([sys.executable, "-m", "sardana_redis", "rewrite", *args,
                           "--redis-url", redis_url, "--wait", str(wait)],
                          capture_output=True, text=True, timeout=wait + 30)


def test_a_file_moved_away_is_written_again_by_the_running_writer(redis_url, root, tmp_path):
    service = writer_process(WRITER, redis_url, root, tmp_path / "writer.log").start()
    try:
        path = root / "s.dat"
        key = publish(redis_url, 4, [str(path)], points=POINTS)
        assert wait_done(redis_url, key, WRITER).status == "written"
        written = path.read_text()

        # the file holds the scan: left as it is
        out = rewrite(redis_url, "4", "--session", "tests")
        assert out.returncode == 0, out.stderr
        assert f"{WRITER}: already whole in {path}: left as it is" in out.stdout
        assert path.read_text() == written

        # moved away: the running writer writes it again, every point
        path.rename(tmp_path / "moved.dat")
        out = rewrite(redis_url, key, "--writer", WRITER)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "pending again for spec-writer" in out.stdout
        assert f"{WRITER}: written (end reason SUCCESS): {path}, {POINTS} point(s)" in out.stdout
        block, = read_spec(path)
        assert block.number == 4 and len(block.rows) == POINTS
        pt_no = block.labels.index("Pt_No")
        ct01 = block.labels.index("ct01")
        assert [row[pt_no] for row in block.rows] == list(range(POINTS))  # as published
        assert [row[ct01] for row in block.rows] == [i / 10 for i in range(POINTS)]
        assert read_spec(tmp_path / "moved.dat")[0].rows == block.rows
        assert wait_done(redis_url, key, WRITER).status == "written"

        # refused: not in Redis, not closed
        out = rewrite(redis_url, "esrf:scan:NOSUCHSCAN")
        assert out.returncode == 2 and "not in Redis" in out.stderr, out.stderr
        running = FakeScan(redis_url, 5, [str(root / "r.dat")])
        running.send(3)
        out = rewrite(redis_url, running.key(), "--writer", WRITER)
        assert out.returncode == 2 and "is not closed (state STARTED)" in out.stderr, out.stderr
        running.end()
    finally:
        service.stop()


def test_a_failed_nexus_scan_is_written_once_the_user_fixed_its_file(redis_url, root, tmp_path):
    """The file holds a foreign entry of the scan's name: the scan fails (never overwritten);
    rewritten as is it fails again; once the user moved the file away, it is written."""
    target = root / "f.h5"
    with h5py.File(target, "w") as f:
        f.create_group("entry1").create_dataset("keep", data=42)
    service = writer_process("nexus-writer", redis_url, root, tmp_path / "nexus.log").start()
    try:
        key = publish(redis_url, 1, None, points=POINTS, info=nexus_request([target]))
        assert wait_done(redis_url, key, "nexus-writer").status == "failed"

        out = rewrite(redis_url, key)  # the writers that know the scan: nexus-writer
        assert out.returncode == 1, out.stdout + out.stderr
        assert "nexus-writer: failed (" in out.stdout and "never overwritten" in out.stdout

        target.rename(tmp_path / "foreign.h5")
        out = rewrite(redis_url, "1", "--session", "tests")
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"nexus-writer: written (end reason SUCCESS): {target}, {POINTS} point(s)" \
            in out.stdout
    finally:
        service.stop()
    assert entries(target) == {"entry1": list(range(POINTS))}
    with h5py.File(tmp_path / "foreign.h5", "r") as f:
        assert list(f) == ["entry1"] and f["entry1/keep"][()] == 42
