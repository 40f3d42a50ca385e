"""`sardana-redis scans`, `show` and `plot` on scans from the real Sardana stack."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import pytest

from tests.publish import publish
from tests.recorder_helpers import SESSION, configure, last_scan_id, run_ok


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sardana_redis", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def two_sardana_scans(door, redis_url, scan_dir):
    configure(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run_ok(door, "ascan", "mot01", 0, 1, 5, 0.01)
    run_ok(door, "dscan", "mot01", -0.5, 0.5, 3, 0.01)
    number = last_scan_id(door)
    publish(redis_url, 999, None, session="another")  # any blissdata scan
    return number - 1, number


def test_scans_lists_with_filters(two_sardana_scans, redis_url):
    first, second = two_sardana_scans
    out = cli("scans", "--redis-url", redis_url, "--session", SESSION)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["number", "name", "session", "state", "points"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (str(first), "ascan", SESSION, "CLOSED", "6"), (str(second), "dscan", SESSION, "CLOSED", "4")]
    assert all("SUCCESS" in line for line in lines[1:])
    everything = cli("scans", "--redis-url", redis_url).stdout
    assert "another" in everything and "999" in everything
    assert len(cli("scans", "--redis-url", redis_url, "--limit", "1").stdout.splitlines()) == 2


def test_show_one_scan(two_sardana_scans, redis_url):
    first, _ = two_sardana_scans
    out = cli("show", str(first), "--redis-url", redis_url, "--session", SESSION)
    assert out.returncode == 0, out.stderr
    assert f"#{first} ascan" in out.stdout and "state CLOSED" in out.stdout
    assert "title: ascan mot01 0.0 1.0 5 0.01" in out.stdout
    assert "end_reason: SUCCESS" in out.stdout
    for stream in ("#Pt No", "mot01", "ct01", "dt"):
        assert any(line.split()[0:1] == [stream.split()[0]] and line.endswith("6 points")
                   for line in out.stdout.splitlines()), stream
    missing = cli("show", "12345", "--redis-url", redis_url)
    assert missing.returncode == 2 and "no scan number 12345" in missing.stderr


def test_plot_writes_a_png_of_the_plotted_curves(two_sardana_scans, redis_url, tmp_path):
    first, _ = two_sardana_scans
    png = tmp_path / "scan.png"
    out = cli("plot", str(first), "--redis-url", redis_url, "--session", SESSION, "-o", str(png))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{png}: ct01, ct02"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100
