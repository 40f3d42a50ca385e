"""Reliability, fault case: the disk of the writers is full (a small tmpfs as one of
their roots). The scan is not marked done (the memory tracker keeps it in Redis), an
ERROR names the file and the scan, other scans go on into another root, the scan is
retried and, once there is room, ends whole, once, in both files."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.reliability.accounting import tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    WRITERS,
    assert_running,
    spec_headers,
    stacks,
    wait_for,
)

POINTS = 1000 if full_scale() else 200
SPECTRUM = 256  #: a SPEC line of about 5 KB per point: the scan does not fit in SMALL
SMALL, ROOMY = "256k", "32m"


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A tmpfs of ``SMALL`` bytes (unmounted at the end); skipped where mounting is refused."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount_point)],
                         capture_output=True, text=True)
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs (needs root): {out.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def resize(mount_point: Path, size: str) -> None:
    """Grow (or shrink) a tmpfs: the operator frees space."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)


def test_writers_disk_full(small_disk, stacks, reliability):  # noqa: F811 (the fixture)
    stack = stacks(more_roots=[small_disk])
    stack.start_all()
    full = stack.scan(1, "full", spectrum=SPECTRUM, root=small_disk)
    full.push(POINTS)
    assert full.finish()
    other = stack.scan(2, "other", spectrum=SPECTRUM)  # another root, with room
    other.push(POINTS)
    assert other.finish()
    stack.wait_written([other.key])
    for name in WRITERS:  # an ERROR naming the file, then periodic retries
        wait_for(lambda: stack.services[name].log().count("not marked done") >= 2, 30,
                 f"{name} retries the scan of the full disk")
        assert f"cannot write {full.files[name.split('-')[0]]}" in stack.services[name].log()
        assert stack.done(full.key, name) is None, "not done while it cannot be written"
    client = redis.Redis.from_url(stack.url)
    assert client.exists(full.key) and client.ttl(full.key) == -1, "kept in Redis"

    resize(small_disk, ROOMY)
    freed = time.monotonic()
    stack.wait_written([full.key], timeout=60)
    recovered = time.monotonic() - freed

    published = {**full.refs(), **other.refs()}
    result = reliability.record(tally(f"disk full ({SMALL} tmpfs) for both writers, then grown",
                                      published))
    result.figures["written"] = f"{recovered:.1f} s after space was freed"
    assert result.clean, result
    spec_text = Path(full.files["spec"]).read_text()
    assert spec_headers(full.files["spec"], 1) == 1 and spec_text.endswith("End reason: SUCCESS\n")
    assert_running(stack)
