"""`sardana-redis scans`, `show` and `plot` on scans from the real Sardana stack
(plots checked against the data Sardana's own NeXus recorder wrote)."""

from __future__ import annotations

import subprocess
import sys
import time

import matplotlib.image
import numpy as np
import pytest

from sardana_redis.browse import find_scan
from sardana_redis.datastore import open_data_store
from sardana_redis.scan_plot import PlotResult, plot
from tests.publish import publish
from tests.recorder_helpers import (
    SESSION,
    configure,
    last_scan_id,
    oracle_measurement,
    read_published,
    run_ok,
)


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


def _plot(redis_url: str, number: int, tmp_path, spectra: str = "last") -> PlotResult:
    """``plot`` in this process on a closed published scan, so that the test sees what was drawn."""
    read_published(redis_url, number, tmp_path)  # waits until the scan is closed
    scan = find_scan(open_data_store(redis_url, init=False), str(number), SESSION)
    png = tmp_path / f"scan{number}-{spectra}.png"
    result = plot(scan, png, spectra=spectra)
    assert matplotlib.image.imread(png).shape[0] > 100
    return result


def test_plot_draws_the_plotted_curves_against_the_motor(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run_ok(door, "a2scan", "mot01", 0, 1, "mot02", 2, 3, 4, 0.01)
    number = last_scan_id(door)

    result = _plot(redis_url, number, tmp_path)

    oracle = oracle_measurement(scan_dir, number)
    [panel] = result.panels
    assert (panel.xlabel, sorted(panel.curves)) == ("mot01", ["ct01", "ct02"])
    for name, (x, y) in panel.curves.items():
        np.testing.assert_array_equal(x, oracle["mot01"])
        np.testing.assert_array_equal(y, oracle[name])
    assert not result.not_drawn


def test_plot_draws_a_complete_mesh_as_an_image(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run_ok(door, "mesh", "mot01", 0, 1, 3, "mot02", 2, 3, 2, 0.01, False)
    number = last_scan_id(door)

    result = _plot(redis_url, number, tmp_path)

    oracle = oracle_measurement(scan_dir, number)
    [panel] = result.panels
    assert (panel.title, panel.xlabel, panel.ylabel) == ("ct01 (image)", "mot01", "mot02")
    [image] = panel.images
    xs, ys = np.unique(oracle["mot01"]), np.unique(oracle["mot02"])
    assert image.shape == (len(ys), len(xs)) == (3, 4)
    for x, y, value in zip(oracle["mot01"], oracle["mot02"], oracle["ct01"]):
        assert image[np.searchsorted(ys, y), np.searchsorted(xs, x)] == value


def test_plot_draws_a_stopped_mesh_as_a_scatter(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    run = door.start("mesh", "mot01", 0, 1, 9, "mot02", 0, 1, 9, 0.01, False).wait_status("step")
    time.sleep(0.5)
    assert run.stop().stopped
    number = last_scan_id(door)

    [panel] = _plot(redis_url, number, tmp_path).panels

    oracle = oracle_measurement(scan_dir, number)
    assert 0 < len(oracle["mot01"]) < 100
    assert panel.title == "ct01 (scatter)" and not panel.images
    np.testing.assert_array_equal(panel.scatters[0],
                                  np.column_stack([oracle["mot01"], oracle["mot02"]]))


def test_plot_draws_1d_and_2d_channels(door, mg_1d_2d, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)
    number = last_scan_id(door)
    oracle = oracle_measurement(scan_dir, number)

    curves, spectrum, frame = _plot(redis_url, number, tmp_path).panels

    assert (curves.xlabel, list(curves.curves)) == ("mot01", ["ct01"])  # only 1D/2D plotted: ct01
    np.testing.assert_array_equal(curves.curves["ct01"][1], oracle["ct01"])
    assert spectrum.title == "oned01 (point 3)"
    np.testing.assert_array_equal(spectrum.curves["oned01"][1], oracle["oned01"][-1])
    assert frame.title == "twod01 (point 3)"
    np.testing.assert_array_equal(frame.images[0], oracle["twod01"][-1])

    waterfall = _plot(redis_url, number, tmp_path, spectra="waterfall").panels[1]
    assert waterfall.title == "oned01 (waterfall)"
    np.testing.assert_array_equal(waterfall.images[0], oracle["oned01"])
    out = cli("plot", str(number), "--redis-url", redis_url, "--session", SESSION,
              "--spectra", "waterfall", "-o", str(tmp_path / "cli.png"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{tmp_path / 'cli.png'}: ct01, oned01, twod01"


def test_plot_a_foreign_scan_without_plots_and_odd_names(redis_url, tmp_path):
    """A scan not from Sardana (no ``plots``, BLISS-like devices), names that matplotlib
    would parse as math: the first counter against the axis, labels kept as they are."""
    devices = {"axis": {"name": "axis", "channels": ["axis:$x_"], "triggered_devices": ["c"]},
               "c": {"name": "c", "channels": ["$\\frac{$", "c:_y"]}}
    publish(redis_url, 7, None, session="bliss", info={"title": "$\\alpha$", "devices": devices},
            streams={"axis:$x_": "float64", "$\\frac{$": "float64", "c:_y": "float64"})
    scan = find_scan(open_data_store(redis_url, init=False), "7", "bliss")

    result = plot(scan, tmp_path / "odd.png")

    [panel] = result.panels
    assert (panel.xlabel, list(panel.curves)) == ("axis:$x_", ["$\\frac{$"])
    x, y = panel.curves["$\\frac{$"]
    np.testing.assert_array_equal(x, np.arange(5) / 10)
    np.testing.assert_array_equal(y, np.arange(5) / 10)
    assert (tmp_path / "odd.png").stat().st_size > 1000
