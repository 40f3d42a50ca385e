"""Reliability, fault case: a reader keeps the NeXus file open (silx view, PyMca, h5py),
with HDF5 file locking on, as readers have it by default.

A separate Python process opens the file with h5py in ``"r"`` mode, without SWMR or with
``swmr=True``, when the next scan starts, or grabs it while the scan runs so that the
writer's reopening at the end of the scan meets it. The NeXus writer waits for the file
(``waiting for FILE: held open by another program``), does not mark the scan done (the
memory tracker keeps it in Redis), and writes it whole once the reader lets go.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import redis

from tests.h5_readers import Reader
from tests.reliability.accounting import tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    LiveScan,
    ServiceStack,
    assert_running,
    stacks,
    wait_for,
)
from tests.services import wait_saved_points

POINTS = 2000 if full_scale() else 200
HOLD = 3.0  #: seconds the reader keeps the file once the writer waits for it


def whole_scan(stack: ServiceStack, number: int) -> LiveScan:
    scan = stack.scan(number)
    scan.push(POINTS)
    assert scan.finish(), scan.publisher.problem
    return scan


def assert_values(path: str, scan: LiveScan) -> None:
    """The NeXus entry holds exactly the values published, and its end items."""
    i = np.arange(scan.pushed)
    with h5py.File(path, "r") as f:
        entry = f[f"entry{scan.number}"]
        np.testing.assert_array_equal(entry["measurement/Pt_No"][()], i)
        np.testing.assert_array_equal(entry["measurement/mot01"][()], i / 10)
        np.testing.assert_array_equal(entry["measurement/ct01"][()], i.astype(float))
        assert entry["end_reason"].asstr()[()] == "SUCCESS"
        assert "end_time" in entry


VARIANTS = {
    "held (h5py 'r') when the scan starts": dict(swmr=False, during=False),
    "held (h5py 'r', swmr=True) when the scan starts": dict(swmr=True, during=False),
    "grabbed (swmr=True) while the scan runs, held at its end": dict(swmr=True, during=True),
    # stopped while it waits: the scan is left for a resume, never recorded as failed
    "held (h5py 'r'), the writer restarted while it waits": dict(swmr=False, during=False,
                                                                 restart=True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reader_holds_the_nexus_file(variant, stacks, reliability):
    """The reader costs the scan nothing: the writer waits for the file, the scan stays
    in Redis unsaved, and it is written whole once the reader closes the file."""
    swmr, during = VARIANTS[variant]["swmr"], VARIANTS[variant]["during"]
    restart = VARIANTS[variant].get("restart", False)
    stack = stacks()
    stack.start_all()
    first = whole_scan(stack, 1)  # the file exists: the user looks at this scan
    stack.wait_written([first.key])
    nexus = first.files["nexus"]
    if during:
        second = stack.scan(2)
        second.push(POINTS // 2)
        wait_saved_points(stack.url, second.key, "nexus-writer", POINTS // 2)
        reader = Reader(Path(nexus), swmr)  # the file is in SWMR mode: swmr=True gets in
        second.push(POINTS - POINTS // 2)
        assert second.finish(), second.publisher.problem
    else:
        reader = Reader(Path(nexus), swmr)
        second = whole_scan(stack, 2)
    writer = stack.services["nexus-writer"]
    waiting = f"waiting for {nexus}: held open by another program"
    wait_for(lambda: waiting in writer.log() or stack.done(second.key, "nexus-writer"), 30,
             "the NeXus writer meets the reader")
    if restart:  # SIGTERM (systemctl restart) while it waits
        writer.stop()
        writer = stack.start_writer("nexus-writer")
        wait_for(lambda: waiting in writer.log() or stack.done(second.key, "nexus-writer"), 30,
                 "the restarted NeXus writer meets the reader")
    stack.wait_written([second.key], writers=["spec-writer"])  # not held up by the reader
    time.sleep(HOLD)
    done_while_held = stack.done(second.key, "nexus-writer")
    client = redis.Redis.from_url(stack.url)
    kept = client.exists(second.key) and client.ttl(second.key) == -1

    reader.release()
    released = time.monotonic()
    records = stack.wait_written([first.key, second.key])
    written = time.monotonic() - released

    result = reliability.record(tally(f"a reader keeps the NeXus file open: {variant}",
                                      {**first.refs(), **second.refs()}))
    result.figures["written"] = f"{written:.1f} s after the reader closed the file"
    assert result.clean, result
    assert {r.status for r in records.values()} == {"written"}, records
    assert done_while_held is None, "not done while not on disk"
    assert kept, "kept in Redis while the reader holds the file"
    for scan in (first, second):
        assert_values(nexus, scan)
    log = writer.log()
    assert log.count(waiting) == 1, log[-3000:]  # one WARNING per wait
    assert "WARNING" in log.split(waiting)[0].splitlines()[-1]
    assert f"{nexus} can be written again" in log
    assert_running(stack)
