"""The SPEC writer service with a real Sardana: same data lines as SPEC_FileRecorder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.recorder_helpers import configure, last_scan_id, run_ok
from tests.services import scan_key, wait_done, writer_process
from tests.spec_files import assert_same_block_text, assert_same_scan, scan_block

WRITER = "spec-writer"
SCANS = {
    "ascan": ("ascan", "mot01", 0, 1, 5, 0.01),
    "a2scan": ("a2scan", "mot01", 0, 1, "mot02", 2, 3, 4, 0.01),
    "mesh": ("mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 2, 0.01, False),
    "ascanct": ("ascanct", "mot01", 0, 1, 10, 0.1),
}


def configure_spec(door, redis_url: str, scan_dir: Path) -> None:
    """Sardana writes oracle.dat itself; scans.dat is requested from the SPEC writer."""
    configure(door, redis_url, scan_dir, ScanFile=["oracle.dat", "scans.dat"],
              ScanRecorder=["SPEC_FileRecorder", "RedisBlissRecorder"])


@pytest.fixture
def spec_writer(redis_url, scan_dir, tmp_path):
    """The writer service under test, stopped at the end of the test (conftest)."""
    return writer_process(WRITER, redis_url, scan_dir, tmp_path / "writer.log").start()


def check_written(redis_url: str, scan_dir: Path, number: int) -> None:
    record = wait_done(redis_url, scan_key(redis_url, number), WRITER)
    assert record.status == "written", record
    assert record.files == (str(scan_dir / "scans.dat"),)
    assert_same_scan(scan_block(scan_dir / "scans.dat", number),
                     scan_block(scan_dir / "oracle.dat", number))
    assert_same_block_text(scan_dir / "scans.dat", scan_dir / "oracle.dat", number)


@pytest.mark.parametrize("name", SCANS)
def test_data_lines_equal_sardanas(name, door, spec_writer, redis_url, scan_dir):
    configure_spec(door, redis_url, scan_dir)
    macro, *params = SCANS[name]

    run_ok(door, macro, *params)

    number = last_scan_id(door)
    check_written(redis_url, scan_dir, number)
    text = (scan_dir / "scans.dat").read_text()
    assert text.startswith(f"#F {scan_dir / 'scans.dat'}\n#E ")
    assert "#C End reason: SUCCESS" in text


@pytest.fixture(scope="module")
def mg_1d(door):
    """A measurement group with a counter and the 1D channel."""
    run_ok(door, "defmeas", "mg_spec_1d", ["ct01", "oned01"])
    return "mg_spec_1d"


def test_1d_channel_and_a_stopped_scan(door, mg_1d, spec_writer, redis_url, scan_dir):
    configure_spec(door, redis_url, scan_dir)
    door.set_env(ActiveMntGrp=mg_1d)
    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)
    check_written(redis_url, scan_dir, last_scan_id(door))
    assert "#@MCA 1024C" in (scan_dir / "scans.dat").read_text()

    run = door.start("ascan", "mot01", 0, 1, 200, 0.02).wait_status("step")
    time.sleep(0.5)
    assert run.stop().stopped
    check_written(redis_url, scan_dir, last_scan_id(door))
    assert "#C End reason: USER_ABORT" in (scan_dir / "scans.dat").read_text()


def test_writer_killed_during_a_scan_and_restarted(door, redis_url, scan_dir, tmp_path):
    configure_spec(door, redis_url, scan_dir)
    service = writer_process(WRITER, redis_url, scan_dir, tmp_path / "writer-1.log").start()
    run = door.start("ascan", "mot01", 0, 1, 60, 0.05)
    deadline = time.monotonic() + 30
    while "recording into" not in service.log():
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.05)
    time.sleep(0.5)
    service.kill()
    assert run.wait(120).ok
    first = last_scan_id(door)
    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)  # published while the writer is down

    service = writer_process(WRITER, redis_url, scan_dir, tmp_path / "writer-2.log").start()
    try:
        check_written(redis_url, scan_dir, first)
        check_written(redis_url, scan_dir, first + 1)
    finally:
        service.stop()


def _snapshot_lines(path: Path, number: int) -> list[str]:
    """The #O, #P and #U<nn> lines of scan ``number``'s header."""
    block = ("\n" + path.read_text()).split(f"\n#S {number} ", 1)[1].split("\n#S ", 1)[0]
    return [line for line in block.splitlines() if line[:2] in ("#O", "#P") or
            (line.startswith("#U") and line[2:4].isdigit())]


def test_snapshot_lines_equal_sardanas(door, spec_writer, redis_url, scan_dir):
    """1D snapshot items get their #U<nn> lines, byte for byte as SPEC_FileRecorder's."""
    configure_spec(door, redis_url, scan_dir)
    run_ok(door, "defsnap", ["mot01", "oned01"])
    try:
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
    finally:
        run_ok(door, "udefsnap")
    number = last_scan_id(door)
    check_written(redis_url, scan_dir, number)
    oracle = _snapshot_lines(scan_dir / "oracle.dat", number)
    assert any(line.startswith("#U00 oned01 = ") for line in oracle), oracle
    assert [l for l in _snapshot_lines(scan_dir / "scans.dat", number) if l.startswith("#U")] == \
        [l for l in oracle if l.startswith("#U")]
