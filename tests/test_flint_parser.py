"""Flint's own scan_info parser (bliss 2.1.2, in a side environment) on scans the real
Sardana published: every scan type gets the plots a user expects.

The scans run once for the module (one Sardana, one Redis); their scan_info goes as JSON
to tests/flint_plots.py, run by the side environment's Python (tests/side_env.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from sardana_redis.publishing.scan_info import build_scan_info
from tests.fixtures_sardana import DEFAULT_RECORDER_ENV
from tests.recorder_helpers import configure, last_scan_id, read_published, run_ok
from tests.side_env import flint_python
from tests.scan_descriptions import ALL_DESCS, nothing_to_declare_desc, spectrum_with_x_desc

SCRIPT = Path(__file__).with_name("flint_plots.py")

SCANS = {
    "ascan": ("ascan", "mot01", 0, 1, 4, 0.01),
    "a2scan": ("a2scan", "mot01", 0, 1, "mot02", 2, 3, 4, 0.01),
    "mesh": ("mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 2, 0.01, False),
    "ascanct": ("ascanct", "mot01", 0, 1, 5, 0.01),
}


def _run_scans(door, redis_url: str, scan_dir: Path, mg_1d_2d: str) -> dict[str, int]:
    """Every scan type of the module; their numbers by name."""
    numbers = {}
    configure(door, redis_url, scan_dir, oracle=False)
    run_ok(door, "plotselect", ["ct01", "ct02"])
    for name, (macro, *params) in SCANS.items():
        run_ok(door, macro, *params)
        numbers[name] = last_scan_id(door)
    run = door.start("ascan", "mot01", 0, 1, 200, 0.02).wait_status("step")
    time.sleep(0.3)
    assert run.stop().stopped
    numbers["stopped"] = last_scan_id(door)
    door.set_env(ActiveMntGrp=mg_1d_2d)
    try:
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
        numbers["1d_2d"] = last_scan_id(door)
    finally:
        door.set_env(ActiveMntGrp=DEFAULT_RECORDER_ENV["ActiveMntGrp"])
    return numbers


@pytest.fixture(scope="module")
def flint(door, module_redis_url, _mg_1d_2d_created, tmp_path_factory) -> dict[str, dict]:
    """What Flint's parser built for each scan: ``{name: {"plots": [...], "channels": ...,
    "info": scan_info}}`` (see tests/flint_plots.py)."""
    python = flint_python()  # first: a build failure skips or fails before any scan
    folder = tmp_path_factory.mktemp("flint")
    numbers = _run_scans(door, module_redis_url, folder, _mg_1d_2d_created)
    infos = {name: read_published(module_redis_url, number, folder).info
             for name, number in numbers.items()}
    parsed = flint_parse(python, infos)
    return {name: {**parsed[name], "info": infos[name]} for name in infos}


def flint_parse(python: Path, infos: dict[str, dict]) -> dict[str, dict]:
    """What Flint's parser builds for each scan_info (tests/flint_plots.py)."""
    proc = subprocess.run([str(python), str(SCRIPT)], input=json.dumps(infos),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _parsed(flint: dict, name: str) -> dict:
    result = flint[name]
    assert "error" not in result, result["error"]  # Flint would plot nothing
    for plot in result["plots"]:  # every channel a plot names is one of the scan's
        for item in plot["items"]:
            for key in ("x", "y", "value", "image"):
                assert item.get(key) in (None, "<index>", *result["channels"]), (plot, key)
    return result


def _of_class(result: dict, cls: str) -> list[dict]:
    return [p for p in result["plots"] if p["class"] == cls]


def _curves(plot: dict) -> set[tuple[str, str]]:
    return {(i["x"], i["y"]) for i in plot["items"] if i["class"] == "CurveItem"}


@pytest.mark.parametrize("name", ["ascan", "a2scan", "ascanct", "stopped"])
def test_step_and_continuous_scans_are_curves_against_the_motor(flint, name):
    result = _parsed(flint, name)
    [curve_plot] = _of_class(result, "CurvePlot")
    assert result["plots"][0] is curve_plot  # Flint's first (default) plot
    assert _curves(curve_plot) == {("mot01", "ct01"), ("mot01", "ct02")}
    assert {p["class"] for p in result["plots"]} == {"CurvePlot"}


def test_stopped_scan_is_a_stopped_scan(flint):
    assert flint["stopped"]["info"]["end_reason"] == "USER_ABORT"


def test_mesh_is_a_scatter_of_the_two_motors(flint):
    result = _parsed(flint, "mesh")
    [scatter] = _of_class(result, "ScatterPlot")
    assert result["plots"][0] is scatter
    assert {(i["x"], i["y"], i["value"]) for i in scatter["items"]} == {
        ("mot01", "mot02", "ct01"), ("mot01", "mot02", "ct02")}
    channels = flint["mesh"]["info"]["channels"]
    assert [channels[m]["axis_points"] for m in ("mot01", "mot02")] == [3, 3]


def test_1d_and_2d_channels_get_a_curve_a_1d_plot_and_an_image_plot(flint):
    result = _parsed(flint, "1d_2d")
    assert result["channels"]["oned01"] == 1 and result["channels"]["twod01"] == 2
    [curve_plot] = _of_class(result, "CurvePlot")
    assert _curves(curve_plot) == {("mot01", "ct01")}  # only 1D/2D plotted: the first counter
    [one_dim] = _of_class(result, "OneDimDataPlot")
    assert [(i["x"], i["y"]) for i in one_dim["items"]] == [("<index>", "oned01")]
    [image] = _of_class(result, "ImagePlot")
    assert [i["image"] for i in image["items"]] == ["twod01"]


def test_hand_made_scan_infos():
    """Cases the demo Sardana cannot make: a 1D x axis channel, nothing to declare, odd labels."""
    descs = {make.__name__: make for make in (*ALL_DESCS, spectrum_with_x_desc,
                                              nothing_to_declare_desc)}
    parsed = flint_parse(flint_python(), {n: build_scan_info(make()) for n, make in descs.items()})
    results = {name: _parsed(parsed, name) for name in descs}
    [one_dim] = _of_class(results["spectrum_with_x_desc"], "OneDimDataPlot")
    assert [(i["x"], i["y"]) for i in one_dim["items"]] == [("energy", "oned01")]
    assert [(p["class"], [(i["x"], i["y"]) for i in p["items"]])
            for p in results["nothing_to_declare_desc"]["plots"]] == [
        ("OneDimDataPlot", [("<index>", "oned01")])]
    assert _curves(_of_class(results["timescan_desc"], "CurvePlot")[0]) == {("dt", "ct01")}
