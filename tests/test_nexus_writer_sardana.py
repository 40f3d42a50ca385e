"""The NeXus writer service with a real Sardana: same datasets as NXscanH5_FileRecorder."""

from __future__ import annotations

import pytest

from tests.nexus_files import assert_same_entry
from tests.recorder_helpers import configure, last_scan_id, run_ok
from tests.services import ServiceProcess, scan_key, wait_done

WRITER = "nexus-writer"
SCANS = {
    "ascan": ("ascan", "mot01", 0, 1, 5, 0.01),
    "mesh": ("mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 2, 0.01, False),
    "ascanct": ("ascanct", "mot01", 0, 1, 10, 0.1),
}


def configure_nexus(door, redis_url, scan_dir):
    """Sardana writes oracle.h5 itself; scans.h5 is requested from the NeXus writer."""
    configure(door, redis_url, scan_dir, ScanFile=["oracle.h5", "scans.h5"],
              ScanRecorder=["NXscanH5_FileRecorder", "RedisBlissRecorder"])


@pytest.fixture
def nexus_writer(redis_url, scan_dir, tmp_path):
    service = ServiceProcess(WRITER, ["--redis-url", redis_url, "--root", str(scan_dir)],
                             tmp_path / "nexus-writer.log")
    service.start()
    yield service
    service.stop()


def check_written(redis_url, scan_dir, number):
    record = wait_done(redis_url, scan_key(redis_url, number), WRITER)
    assert record.status == "written", record
    assert_same_entry(scan_dir / "scans.h5", scan_dir / "oracle.h5", number)


@pytest.mark.parametrize("name", SCANS)
def test_datasets_equal_sardanas(name, door, nexus_writer, redis_url, scan_dir):
    configure_nexus(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    macro, *params = SCANS[name]

    run_ok(door, macro, *params)

    check_written(redis_url, scan_dir, last_scan_id(door))
