"""Reliability, fault cases on the files themselves: a folder or a file swapped for a link
while a scan uses it, a NeXus writer SIGKILLed in every phase of a scan, another program
appending to a SPEC file while the SPEC writer is down; and the messages that name the
cause (a full Redis, a failed SPEC block).

Real Redis Stack, real writer processes (as in ``test_faults_services.py``); the kills at
an exact moment use the writers' test-only pauses (``SARDANA_REDIS_TEST_DELAY_<POINT>``
environment variables, see :func:`sardana_redis.following.paths.test_delay`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from sardana_redis.following.follower import redis_problem
from sardana_redis.following.paths import TEST_DELAY_ENV
from sardana_redis.spec_writer.writer import Block, SpecScanWriter
from tests.h5_readers import Reader
from tests.reliability.accounting import nexus_points, spec_points, tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    LiveScan,
    ServiceStack,
    assert_running,
    spec_headers,
    stacks,
    wait_for,
)
from tests.services import wait_saved_points

POINTS = 2000 if full_scale() else 200
CHANGED = "it changed on disk since the scan started (replaced by a link?)"


def whole_scan(stack: ServiceStack, number: int, name: str = "scans", root: Path | None = None
               ) -> LiveScan:
    scan = stack.scan(number, name, root=root)
    scan.push(POINTS)
    assert scan.finish(), scan.publisher.problem
    return scan


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its digest (what a writer may have written there)."""
    return {str(p): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. Confinement for the whole life of a file --------------------------------------------

def test_folder_swapped_for_a_link_while_a_scan_waits_for_its_file(stacks, reliability):
    """Scan 2 waits for the files scan 1 writes (one scan per file at a time); meanwhile
    the folder is swapped for a link to a folder outside the roots. Nothing is written
    outside: scan 2 is refused when it opens its files, the NeXus end items of scan 1
    too (its file is no longer where it was); the writers go on with the next scans."""
    stack = stacks()
    stack.start_all()
    sub, outside = stack.root / "sub", stack.workdir / "outside"
    sub.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("another user's folder\n")
    before = files_under(outside)
    first = stack.scan(1, root=sub)
    first.push(POINTS // 2)
    wait_saved_points(stack.url, first.key, "nexus-writer", POINTS // 2)
    wait_for(lambda: len(spec_points(Path(first.files["spec"])).get(1, [])) == POINTS // 2, 30,
             "the SPEC writer wrote the first half of scan 1")
    second = whole_scan(stack, 2, root=sub)  # waits for the files of scan 1
    time.sleep(1.0)
    moved = stack.root / "sub.moved"
    sub.rename(moved)
    sub.symlink_to(outside, target_is_directory=True)
    first.push(POINTS - POINTS // 2)
    assert first.finish(), first.publisher.problem
    records = stack.wait_written([first.key, second.key], timeout=60)
    after_attack = files_under(outside)
    sub.unlink()
    moved.rename(sub)
    third = whole_scan(stack, 3, root=sub)
    stack.wait_written([third.key])

    published = {**first.refs(kinds=["spec"]), **third.refs()}
    result = reliability.record(tally(
        "a folder swapped for a link to outside the root while a scan waits", published,
        note="in: scan 1 (SPEC) and the next scan; scan 2 refused, scan 1's NeXus end items "
             "refused: their folder was a link to outside"))
    result.figures["files written outside the root"] = str(len(after_attack) - len(before))
    assert after_attack == before, "written outside the root"
    assert result.clean, result
    assert records[second.key, "spec-writer"].status == "failed"
    assert records[second.key, "nexus-writer"].status == "failed"
    assert f"refusing {sub}/scans.dat: {CHANGED}" in stack.services["spec-writer"].log()
    assert f"refusing {sub}/scans.h5: {CHANGED}" in stack.services["nexus-writer"].log()
    assert sorted(nexus_points(Path(first.files["nexus"]))) == [1, 3]  # nothing of scan 2
    assert spec_headers(first.files["spec"], 2) == 0
    assert_running(stack)


def test_nexus_file_swapped_for_a_link_before_the_end_of_scan_reopen(stacks, reliability):
    """While the NeXus writer waits to reopen its file at the end of a scan (a reader
    holds it), the file is swapped for a link to a valid HDF5 file outside the roots:
    the writer refuses it, the outside file is untouched, the next scan is written."""
    stack = stacks()
    stack.start_all()
    outside = stack.workdir / "outside"
    outside.mkdir()
    first = whole_scan(stack, 1)
    stack.wait_written([first.key])
    nexus = Path(first.files["nexus"])
    second = stack.scan(2)
    second.push(POINTS // 2)
    wait_saved_points(stack.url, second.key, "nexus-writer", POINTS // 2)
    reader = Reader(nexus, swmr=True)
    second.push(POINTS - POINTS // 2)
    assert second.finish(), second.publisher.problem
    writer = stack.services["nexus-writer"]
    wait_for(lambda: f"waiting for {nexus}: held open by another program" in writer.log(), 30,
             "the NeXus writer waits to reopen its file")
    victim = outside / "victim.h5"
    shutil.copyfile(nexus, victim)
    before = digest(victim)
    moved = nexus.with_name("scans.h5.moved")
    os.rename(nexus, moved)
    nexus.symlink_to(victim)
    reader.release()
    record = stack.wait_written([second.key], writers=["nexus-writer"])[second.key, "nexus-writer"]
    untouched = digest(victim) == before
    nexus.unlink()
    os.rename(moved, nexus)
    third = whole_scan(stack, 3)
    stack.wait_written([third.key])

    result = reliability.record(tally(
        "the NeXus file swapped for a link before the end-of-scan reopen",
        {**first.refs(), **third.refs(), **second.refs(kinds=["spec"])},
        note="in: the scans before and after, and the SPEC file of the attacked scan; "
             "its NeXus end items refused"))
    result.figures["outside file"] = "untouched" if untouched else "WRITTEN"
    assert untouched, "end items written outside the root"
    assert result.clean, result
    assert record.status == "failed" and CHANGED in record.detail, record
    assert f"refusing {nexus}: {CHANGED}" in writer.log()
    assert_running(stack)


# --- 3. A crash at any moment leaves every earlier entry readable ----------------------------

READ = """
import sys, h5py
with h5py.File(sys.argv[1], "r", swmr=sys.argv[2] == "swmr") as f:
    for name in sys.argv[3:]:
        print(name, len(f[name + "/measurement/Pt_No"][()]), f[name + "/end_reason"].asstr()[()])
"""


def read_entries(path: Path, *numbers: int, swmr: bool = False) -> str:
    """The entries read by h5py in a separate process ("r"): 'entryN POINTS REASON'."""
    done = subprocess.run([sys.executable, "-c", READ, str(path), "swmr" if swmr else "",
                           *(f"entry{n}" for n in numbers)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


PHASES = {
    "creating the entry": "NEXUS_CREATE_WRITES",
    "writing points in SWMR mode": None,
    "adding the end items": "NEXUS_END_WRITES",
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_nexus_writer_killed_in_every_phase(phase, stacks, reliability, monkeypatch):
    """The NeXus writer SIGKILLed while it adds scan 2 to a file holding scan 1: in the
    middle of HDF5's writes outside SWMR (creating the entry, adding the end items; a
    test-only pause after the first metadata was overwritten) or while it writes points
    in SWMR mode. The restarted writer recovers the file (undoes the half-done changes,
    or clears the SWMR mark: SWMR readers read it meanwhile), entry 1 is readable and
    whole, scan 2 and the next one are written whole."""
    pause = PHASES[phase]
    stack = stacks()
    stack.start_all()
    first = whole_scan(stack, 1)
    stack.wait_written([first.key])
    nexus = Path(first.files["nexus"])
    writer = stack.services["nexus-writer"]
    if pause:
        monkeypatch.setenv(TEST_DELAY_ENV + pause, "60")
        writer.stop()
        writer = stack.start_writer("nexus-writer")
    second = stack.scan(2)
    second.push(POINTS // 2)
    if pause == "NEXUS_END_WRITES":
        second.push(POINTS - POINTS // 2)
        assert second.finish(), second.publisher.problem
    if pause:
        wait_for(lambda: f"test delay {pause}" in writer.log(), 30, f"the writer pauses in {pause}")
    else:
        wait_saved_points(stack.url, second.key, "nexus-writer", POINTS // 2)
    writer.kill()
    if not pause:  # left open for SWMR write: SWMR readers read it meanwhile
        assert read_entries(nexus, 1, swmr=True) == f"entry1 {POINTS} SUCCESS\n"
    if pause:
        monkeypatch.delenv(TEST_DELAY_ENV + pause)
    if pause != "NEXUS_END_WRITES":
        second.push(POINTS - POINTS // 2)
        assert second.finish(), second.publisher.problem
    writer = stack.start_writer("nexus-writer")
    third = whole_scan(stack, 3)
    stack.wait_written([second.key, third.key], timeout=90)

    result = reliability.record(tally(f"NeXus writer SIGKILLed while {phase}",
                                      {**first.refs(), **second.refs(), **third.refs()}))
    result.figures["entry 1"] = "readable, whole"
    assert result.clean, result
    assert read_entries(nexus, 1, 2, 3) == "".join(f"entry{n} {POINTS} SUCCESS\n" for n in (1, 2, 3))
    log = writer.log()
    if pause:
        assert "unfinished change(s) undone, the file is as it was before them" in log, log[-3000:]
    else:
        assert "was left open for SWMR write by a crashed writer: recovering it" in log, log[-3000:]
    assert not list(nexus.parent.glob(".*.undo"))
    assert_running(stack)


# --- 7. A resume never cuts what this writer did not write ----------------------------------

def test_spec_resume_keeps_lines_another_program_appended(stacks, reliability):
    """The SPEC writer SIGKILLed mid-scan; another program appends lines to the file; the
    restarted writer does not cut them: the scan goes on in a continuation block (``#C``
    line saying why), every point once, and the next scan follows."""
    stack = stacks()
    stack.start_all()
    scan = stack.scan(1)
    scan.push(POINTS // 2)
    spec = Path(scan.files["spec"])
    wait_for(lambda: len(spec_points(spec).get(1, [])) == POINTS // 2, 30,
             "the SPEC writer wrote the first half")
    stack.services["spec-writer"].kill()
    foreign = "#C another program: a note appended while the writer was down\nnote: done\n"
    with open(spec, "a") as f:
        f.write(foreign)
    scan.push(POINTS - POINTS // 2)
    assert scan.finish(), scan.publisher.problem
    stack.start_writer("spec-writer")
    after = whole_scan(stack, 2)
    stack.wait_written([scan.key, after.key], writers=["spec-writer"], timeout=60)

    text = spec.read_text()
    result = reliability.record(tally("SPEC file appended to by another program while the "
                                      "writer was down", {**scan.refs(kinds=["spec"]),
                                                          **after.refs(kinds=["spec"])}))
    result.figures["appended lines"] = "intact" if foreign in text else "CUT"
    assert foreign in text
    assert result.clean, result
    assert spec_headers(str(spec), 1) == 2  # the block, then its continuation
    assert f"#C Continued from an earlier block of this scan (#S 1, points 0 to {POINTS // 2 - 1}" \
        " above)" in text
    assert "another program wrote to it" in text
    assert_running(stack)


# --- 11. Messages that name the cause ------------------------------------------------------

def test_full_redis_is_reported_as_full_not_as_lost(stacks):
    """The refusal of a Redis filled up to maxmemory is reported by the writers as a full
    Redis, never as "unreachable" (the message of their retries)."""
    stack = stacks(maxmemory="30mb")
    stack.start_redis()
    client = redis.Redis.from_url(stack.url)
    junk = 0
    with pytest.raises(redis.exceptions.OutOfMemoryError) as refused:
        while junk < 10_000:
            client.set(f"junk:{junk}", b"x" * 100_000)
            junk += 1
    message = redis_problem(refused.value)
    assert message.startswith("Redis is full (maxmemory reached) and refuses writes (command not allowed"), message
    assert redis_problem(redis.ConnectionError("Connection refused")).startswith("Redis unreachable")


def test_failed_spec_block_says_why(tmp_path):
    """A SPEC block given up on an error ends with ``#C scan failed: REASON``."""
    path = tmp_path / "scans.dat"
    path.write_text("#S 1 ascan\n#L Pt_No\n0\n")
    with open(path, "a+") as out:
        SpecScanWriter._give_up([Block(path, out, 0, False)], "ValueError: bad point\nnext")
    assert path.read_text().splitlines()[-1] == "#C scan failed: ValueError: bad point next"
