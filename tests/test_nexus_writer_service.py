"""The NeXus writer service: restarts, crashes and hostile scans (shared machinery, NeXus files)."""

from __future__ import annotations


import h5py
import pytest

from tests.nexus_files import entries, nexus_request
from tests.publish import FakeScan, publish
from tests.services import (
    free_saved_points,
    roll_back_ledger,
    wait_done,
    wait_saved_points,
    writer_process,
)

WRITER = "nexus-writer"


def writer(redis_url, root, tmp_path, name="a"):
    return writer_process(WRITER, redis_url, root, tmp_path / f"writer-{name}.log")


def test_down_then_killed_mid_scan_then_restarted(redis_url, root, tmp_path):
    target = root / "n.h5"
    writer(redis_url, root, tmp_path, "first-start").start().stop()  # its cursor: now
    first = publish(redis_url, 1, None, info=nexus_request([target]))  # published while down
    service = writer(redis_url, root, tmp_path).start()
    assert wait_done(redis_url, first, WRITER).status == "written"
    scan = FakeScan(redis_url, 2, None, info=nexus_request([target]))
    for _ in range(3):
        scan.send(10)
    saved = wait_saved_points(redis_url, scan.key(), WRITER, 30)
    service.kill()
    free_saved_points(redis_url, scan.key(), saved)  # the memory tracker under pressure
    scan.send(30)
    scan.end()

    service = writer(redis_url, root, tmp_path, "b").start()
    try:
        record = wait_done(redis_url, scan.key(), WRITER, timeout=60)
    finally:
        service.stop()
    assert record.status == "written" and record.points == 60
    assert entries(target) == {"entry1": list(range(5)), "entry2": list(range(60))}


def test_ledger_rolled_back_by_a_snapshot_leaves_a_whole_entry_alone(redis_url, root, tmp_path):
    """Redis restored from an older snapshot forgets that the scan was written: its whole
    entry is kept, not cut back to the points the snapshot knew."""
    target = root / "r.h5"
    service = writer(redis_url, root, tmp_path).start()
    key = publish(redis_url, 1, None, info=nexus_request([target]), points=20)
    wait_done(redis_url, key, WRITER)
    service.stop()
    roll_back_ledger(redis_url, WRITER, key, {str(target): 1}, 10)

    service = writer(redis_url, root, tmp_path, "b").start()
    assert wait_done(redis_url, key, WRITER).detail == "already whole in its files"
    service.stop()
    assert entries(target) == {"entry1": list(range(20))}


@pytest.mark.parametrize("bad", ["outside", "traversal", "malformed_h5map", "existing_entry"])
def test_hostile_scan_is_rejected_and_the_next_one_written(bad, redis_url, root, tmp_path):
    target = root / "h.h5"
    if bad == "existing_entry":
        with h5py.File(target, "w") as f:
            f.create_group("entry1").create_dataset("keep", data=42)
    info = {
        "outside": nexus_request(["/etc/evil.h5"]),
        "traversal": nexus_request([f"{root}/../evil.h5"]),
        "malformed_h5map": {**nexus_request([target]), "h5maps": {str(target): {"type": "group",
                                                                              "children": 5}}},
        "existing_entry": nexus_request([target]),
    }[bad]
    service = writer(redis_url, root, tmp_path).start()
    try:
        hostile = publish(redis_url, 1, None, info=info)
        good = publish(redis_url, 2, None, info=nexus_request([root / "good.h5"]))
        record = wait_done(redis_url, hostile, WRITER)
        assert record.status == "failed" and record.detail, record
        assert wait_done(redis_url, good, WRITER).status == "written"
    finally:
        service.stop()
    assert entries(root / "good.h5") == {"entry2": list(range(5))}
    assert not (tmp_path / "evil.h5").exists()
    if bad == "existing_entry":
        with h5py.File(target, "r") as f:
            assert f["entry1/keep"][()] == 42  # never overwritten
