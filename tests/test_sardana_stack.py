"""Smoke tests of the local stack: real Tango database, real Sardana, demo elements."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tango

from sardana_redis.local_stack.door import DoorClient, MacroStuck
from tests.session_door import SardanaRestarted


def read_last_spec_scan(path: Path) -> tuple[list[str], list[list[float]]]:
    """Column labels and data rows of the last scan of a SPEC file."""
    labels: list[str] = []
    rows: list[list[float]] = []
    for line in path.read_text().splitlines():
        if line.startswith("#S "):
            labels, rows = [], []
        elif line.startswith("#L "):
            labels = line[3:].split()
        elif line.strip() and not line.startswith("#"):
            rows.append([float(value) for value in line.split()])
    return labels, rows


@pytest.fixture
def mot04_upper_limit_1(door: DoorClient) -> Iterator[None]:
    """mot04 with an upper software limit of 1 (restored afterwards)."""
    motor = tango.DeviceProxy(door.macro_server.getElementInfo("mot04").full_name)
    config = motor.get_attribute_config("Position")
    old_max = config.max_value
    config.max_value = "1"
    motor.set_attribute_config(config)
    try:
        yield
    finally:
        config.max_value = old_max
        motor.set_attribute_config(config)


def test_ascan_writes_spec_file(door: DoorClient, scan_dir: Path) -> None:
    door.set_env(ScanDir=str(scan_dir), ScanFile=["oracle.dat"])

    result = door.run("ascan", "mot01", 0, 1, 5, 0.01, timeout=60)

    assert result.ok, result.error
    assert result.door_state == "ON"
    assert any("Scan #" in line and "ended" in line for line in result.info)
    labels, rows = read_last_spec_scan(scan_dir / "oracle.dat")
    assert len(rows) == 6
    mot01 = [row[labels.index("mot01")] for row in rows]
    assert mot01 == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_macro_error_is_reported(door: DoorClient, mot04_upper_limit_1: None) -> None:
    result = door.run("mv", [["mot04", 5]], timeout=60)

    assert result.raised
    assert result.door_state == "ALARM"
    assert any("An error occurred while running mv" in line for line in result.error)
    assert any("above the maximum" in line for line in result.error)
    # The next macro runs normally and sees only its own logs.
    after = door.run("wm", ["mot04"], timeout=60)
    assert after.ok
    assert after.door_state == "ON"
    assert after.error == []


def test_scan_stopped_by_user(door: DoorClient, scan_dir: Path) -> None:
    door.set_env(ScanDir=str(scan_dir), ScanFile=["stopped.dat"])
    run = door.start("ascan", "mot01", 0, 1, 100, 0.05).wait_status("step")

    result = run.stop()

    assert result.stopped
    assert result.status == "stop"
    assert result.door_state == "ON"
    _, rows = read_last_spec_scan(scan_dir / "stopped.dat")
    assert 0 < len(rows) < 101


def test_end_of_macro_seen_when_door_events_are_missed(door: DoorClient, scan_dir: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Tango re-subscribes after a missed heartbeat and taurus polls meanwhile: a short
    macro's RUNNING can be missed. The client then reads the Door's state itself."""
    door.set_env(ScanDir=str(scan_dir), ScanFile=["eventless.dat"])
    door._state_attr.removeListener(door._on_state)  # the Door's state events stop coming
    try:
        result = door.run("ascan", "mot01", 0, 1, 5, 0.01, timeout=30)
    finally:
        door._state_attr.addListener(door._on_state)

    assert result.ok, result.error
    assert "over by the Door's state read directly" in caplog.text
    _, rows = read_last_spec_scan(scan_dir / "eventless.dat")
    assert len(rows) == 6
    assert door.run("wm", ["mot01"], timeout=30).ok  # the next macro starts normally


def test_a_stuck_macro_restarts_sardana_before_the_next(door: DoorClient, scan_dir: Path) -> None:
    """A macro neither ended nor stopped (as a scan whose motion never reports MOVING): the
    session's client says so, then restarts Sardana, loudly, before the next macro."""
    with pytest.raises(MacroStuck):
        DoorClient.run(door, "stuck_forever", timeout=2, stop_timeout=2)
    door.set_env(ScanDir=str(scan_dir), ScanFile=["after.dat"])

    with pytest.warns(SardanaRestarted, match="stuck_forever still running when ascan starts"):
        result = door.run("ascan", "mot01", 0, 1, 5, 0.01, timeout=60)

    assert result.ok, result.error
    _, rows = read_last_spec_scan(scan_dir / "after.dat")
    assert len(rows) == 6
