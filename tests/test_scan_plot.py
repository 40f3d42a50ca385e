"""What ``sardana-redis plot`` chooses to draw, from scan_info alone (no Redis): our
scan_info, BLISS-like scan_info without ``plots``, and hostile scan_info."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sardana_redis.publishing.scan_info import build_scan_info
from sardana_redis.scan_plot import Panel, choose_panels, numeric_shapes, regular_grid
from tests.scan_descriptions import ascan_desc, detectors_desc, mesh_desc, timescan_desc


def _shapes(info) -> dict:
    """Stream shapes as our publisher makes them from a scan_info's channels."""
    shapes = {"oned01": (1024,), "twod01": (256, 200)}
    return {name: shapes.get(name, ()) for name, ch in info["channels"].items()}


def test_our_scans_follow_their_plots():
    info = build_scan_info(ascan_desc())
    assert choose_panels(info, _shapes(info)) == [
        Panel("curves", ("ct01", "ct02", "ct03", "ct04"), x="mot01")]
    info = build_scan_info(mesh_desc())
    assert choose_panels(info, _shapes(info)) == [
        Panel("mesh", ("ct01",), x="mot01", y="mot02", grid=(3, 2))]
    info = build_scan_info(timescan_desc())
    assert choose_panels(info, _shapes(info)) == [Panel("curves", ("ct01",), x="dt")]
    info = build_scan_info(detectors_desc())
    assert choose_panels(info, _shapes(info)) == [
        Panel("curves", ("ct01",), x="mot01"), Panel("spectrum", ("oned01",)),
        Panel("image", ("twod01",))]


def _bliss_info(scan_type: str = "ascan", mesh: bool = False) -> dict:
    """A BLISS-like scan_info (no ``plots``): axis -> timer -> counters."""
    axes = ["axis:roby", "axis:robz"] if mesh else ["axis:roby"]
    channels = {a: {"dim": 0, **({"axis_id": i, "axis_points": 3} if mesh else {})}
                for i, a in enumerate(axes)}
    channels |= {"timer:elapsed_time": {"dim": 0, "unit": "s"},
                 "timer:epoch": {"dim": 0, "unit": "s"},
                 "simulation_diode_sampling_controller:diode": {"dim": 0},
                 "simu1:spectrum": {"dim": 1}}
    return {"type": scan_type, "channels": channels, "devices": {
        "axis": {"name": "axis", "channels": axes, "triggered_devices": ["timer"]},
        "timer": {"name": "timer", "channels": ["timer:elapsed_time", "timer:epoch"],
                  "triggered_devices": ["diode", "simu1"]},
        "diode": {"name": "diode", "channels": ["simulation_diode_sampling_controller:diode"]},
        "simu1": {"name": "simu1", "channels": ["simu1:spectrum"]}}}


def test_scans_without_plots_get_what_flint_infers():
    info = _bliss_info()
    shapes = {name: (16,) if ch["dim"] else () for name, ch in info["channels"].items()}
    assert choose_panels(info, shapes) == [
        Panel("curves", ("simulation_diode_sampling_controller:diode",), x="axis:roby"),
        Panel("spectrum", ("simu1:spectrum",))]
    info = _bliss_info("amesh", mesh=True)
    assert choose_panels(info, shapes | {"axis:robz": ()})[0] == Panel(
        "mesh", ("simulation_diode_sampling_controller:diode",), x="axis:roby", y="axis:robz",
        grid=(3, 3))
    info = _bliss_info("timescan")
    del info["devices"]["axis"]
    assert choose_panels(info, shapes)[0] == Panel(
        "curves", ("simulation_diode_sampling_controller:diode",), x="timer:elapsed_time")


@pytest.mark.parametrize("info", [
    {}, {"plots": "x", "devices": 3, "channels": None},
    {"plots": [1, {"kind": "curve-plot", "items": [{"y": "nope"}, 5]},
               {"kind": "scatter-plot", "items": [{"x": "a", "y": "b", "value": "zz"}]},
               {"kind": "1d-plot", "x": ["a"], "items": [{"y": "b"}]}],
     "devices": {"d": {"channels": 7}, "e": 1}, "channels": {"a": {"axis_points": "9"}}},
])
def test_hostile_scan_info_falls_back_to_the_streams(info):
    assert choose_panels(info, {"a": (), "b": (), "s": (4,)}) == [
        Panel("curves", ("a",)), Panel("spectrum", ("s",))]


def test_grid_regular_complete_or_not():
    x, y = np.tile([0.0, 0.5, 1.0], 2), np.repeat([2.0, 3.0], 3)
    assert regular_grid(x, y, (3, 2)) == (3, 2, True)
    assert regular_grid(x, y, None) == (3, 2, True)
    assert regular_grid(y, x, None) == (2, 3, False)  # y is the fast axis
    jitter = x + np.array([1e-4, -1e-4, 0, 2e-4, 0, -1e-4])
    assert regular_grid(jitter, y, (3, 2)) == (3, 2, True)
    assert regular_grid(x[:5], y[:5], (3, 2)) is None  # a stopped mesh: scatter
    assert regular_grid(np.arange(6.0), y, (3, 2)) is None  # not a grid


def test_only_real_numbers_are_drawn():
    """Complex, text and JSON streams are left out of the plots (matplotlib would drop the
    imaginary part without a word; the browser viewer refuses them)."""
    streams = {name: SimpleNamespace(dtype=np.dtype(dtype), shape=shape, kind=kind)
               for name, dtype, shape, kind in [
                   ("ct01", "float64", (), "array"), ("flag", "bool", (), "array"),
                   ("n", "uint16", (3,), "array"), ("z", "complex128", (), "array"),
                   ("label", "<U8", (), "array"), ("meta", "float64", (), "json")]}
    assert numeric_shapes(SimpleNamespace(streams=streams)) == {"ct01": (), "flag": (),
                                                                "n": (3,)}
