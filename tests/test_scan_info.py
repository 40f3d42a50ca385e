"""scan_info built from hand-made scan descriptions (tests/scan_descriptions.py; no Redis,\nno Sardana)."""

import json
import math

import numpy as np
import pytest

from sardana_redis.publishing.scan_info import (
    build_scan_info,
    end_scan_info,
    json_safe,
    validate_scan_info,
)
from sardana_redis.scan_model import EndReason, ScanEnd
from tests.golden_files import assert_golden_json
from tests.scan_descriptions import (
    ALL_DESCS,
    NEXUS_FILE,
    ascan_desc,
    column,
    counter,
    describe,
    detectors_desc,
    dt,
    mesh_desc,
    motor,
    nothing_to_declare_desc,
    odd_desc,
    point_nb,
    spectrum_with_x_desc,
    timescan_desc,
)


@pytest.mark.parametrize("make", ALL_DESCS)
def test_scan_info_is_valid_json(make):
    desc = make()
    info = build_scan_info(desc)
    validate_scan_info(info)
    assert json.loads(json.dumps(info, allow_nan=False)) == info
    assert info["scan_nb"] == 12 and info["type"] == desc.scan_type and info["save"] is True
    assert info["npoints"] == desc.npoints and info["count_time"] == 0.1


@pytest.mark.parametrize("make", [ascan_desc, mesh_desc, detectors_desc])
def test_scan_info_as_golden_json(make):
    """The whole scan_info of a step scan, a mesh and a scan with 1D and 2D channels."""
    name = make.__name__.removesuffix("_desc")
    assert_golden_json(f"scan_info_{name}.json", build_scan_info(make()))


@pytest.mark.parametrize("make", ALL_DESCS)
def test_channels_devices_and_chain_agree(make):
    desc = make()
    info = build_scan_info(desc)
    assert list(info["channels"]) == [c.stream for c in desc.columns]
    for col in desc.columns:
        channel = info["channels"][col.stream]
        assert channel["dim"] == col.ndim and channel["display_name"] == col.label
        assert channel["points"] == desc.npoints
    devices = info["devices"]
    device_channels = [s for dev in devices.values() for s in dev.get("channels", [])]
    assert sorted(device_channels) == sorted(info["channels"])
    (top, chain), = info["acquisition_chain"].items()
    assert chain["top_master"] == top and chain["devices"] == list(devices)
    reached, todo = set(), [top]
    while todo:
        name = todo.pop()
        reached.add(name)
        todo.extend(devices[name].get("triggered_devices", []))
    assert reached == set(devices)
    chained = chain["scalars"] + chain["spectra"] + chain["images"] + sum(chain["master"].values(), [])
    assert sorted(chained) == sorted(info["channels"])
    assert chain["master"]["scalars"] == devices[top]["channels"]


def test_ascan():
    info = build_scan_info(ascan_desc())
    assert info["acquisition_chain"]["axis"]["master"]["scalars"] == ["mot01"]
    assert info["devices"]["timer"]["channels"] == ["#Pt No", "dt"]
    assert info["channels"]["mot01"] == {"dim": 0, "display_name": "mot01", "unit": "mm",
                                         "min": 0.0, "max": 10.0, "points": 11}
    assert info["channels"]["dt"]["unit"] == "s"
    assert info["channels"]["#Pt No"]["max"] == 10
    assert info["plots"] == [{"kind": "curve-plot", "items": [
        {"kind": "curve", "x": "mot01", "y": f"ct0{i}"} for i in range(1, 5)]}]
    assert info["positioners"] == {
        "positioners_start": {"mot02": 1.5, "mot01": 0.0, "mot03": None},
        "positioners_units": {"mot02": "mm", "mot01": "mm", "mot03": None},
    }
    sardana = info["sardana"]
    assert sardana["ref_moveables"] == ["mot01"]
    assert sardana["requested_files"][0] == {"path": NEXUS_FILE, "format": "nexus"}
    assert [c["stream"] for c in sardana["columns"]] == list(info["channels"])


def test_mesh_is_a_scatter():
    info = build_scan_info(mesh_desc())
    assert info["plots"] == [{"kind": "scatter-plot", "items": [
        {"kind": "scatter", "x": "mot01", "y": "mot02", "value": "ct01"},
        {"kind": "scatter", "x": "mot01", "y": "mot02", "value": "ct02"},
    ]}]
    channels = info["channels"]
    assert {k: channels["mot01"][k] for k in ("axis_id", "axis_points", "axis_kind")} == \
        {"axis_id": 0, "axis_points": 3, "axis_kind": "forth"}
    assert {k: channels["mot02"][k] for k in ("axis_id", "axis_points", "axis_kind")} == \
        {"axis_id": 1, "axis_points": 2, "axis_kind": "forth"}
    assert all(channels[s]["group"] == "scatter" for s in ("mot01", "mot02", "ct01", "dt"))
    assert "axis_id" not in channels["ct01"]


def test_timescan_plots_against_time():
    info = build_scan_info(timescan_desc())
    assert list(info["acquisition_chain"]) == ["timer"]
    assert "axis" not in info["devices"]
    assert info["plots"] == [{"kind": "curve-plot", "items": [{"kind": "curve", "x": "dt", "y": "ct01"}]}]


def test_detectors():
    info = build_scan_info(detectors_desc())
    channels = info["channels"]
    assert [channels[s]["dim"] for s in ("oned01", "twod01", "twod02")] == [1, 2, 0]
    # oned01 has no 1D x axis: no "1d-plot" (Flint's parser fails on one without x),
    # Flint infers one against the index
    assert [p["kind"] for p in info["plots"]] == ["curve-plot"]
    plotted = json.dumps(info["plots"])
    assert "twod01" not in plotted and "twod02" not in plotted
    chain = info["acquisition_chain"]["axis"]
    assert chain["spectra"] == ["oned01"] and chain["images"] == ["twod01"]
    assert "twod02" in chain["scalars"]


def test_spectrum_with_an_x_axis_channel_is_a_1d_plot():
    info = build_scan_info(spectrum_with_x_desc())
    assert info["plots"][1:] == [{"kind": "1d-plot", "name": "oned01", "x": "energy",
                                  "items": [{"kind": "curve", "y": "oned01"}]}]


def test_only_images_plotted_keeps_the_first_counter_as_curve():
    columns = [point_nb(3), motor("mot01"), counter(1, plot_type=0),
               column("twod01", key="expchan/twod/1", shape=(4, 5), plot_type=2), dt()]
    info = build_scan_info(describe(columns, npoints=3))
    assert info["plots"] == [{"kind": "curve-plot", "items": [
        {"kind": "curve", "x": "mot01", "y": "ct01"}]}]


def test_nothing_to_declare_leaves_plots_out():
    """An empty ``plots`` list would stop Flint from inferring its own plots."""
    info = build_scan_info(nothing_to_declare_desc())
    validate_scan_info(info)
    assert "plots" not in info


def test_odd_labels_and_metadata_are_json_safe():
    info = build_scan_info(odd_desc())
    assert info["plots"] == [
        {"kind": "curve-plot", "items": [{"kind": "curve", "x": "Ümlaut mot", "y": "ct µA/s #1"}]},
        {"kind": "curve-plot", "items": [{"kind": "curve", "x": "#Pt No", "y": "2theta"}]},
    ]
    assert info["channels"]["ct µA/s #1"]["unit"] == "µA"
    meta = info["sardana"]["columns"][2]
    assert meta["min_value"] == 0.5 and type(meta["min_value"]) is float
    assert meta["nan"] is None and meta["shape"] == []
    assert info["sardana"]["numpy"] == [0, 1, 2] and info["sardana"]["macro_id"] == "abc"


def test_end_scan_info():
    end = ScanEnd("2024-05-02T10:01:00+02:00", EndReason.USER_ABORT, "Abort", {"error": np.int32(3)})
    added = end_scan_info(end)
    assert added == {"end_time": "2024-05-02T10:01:00+02:00", "end_reason": "USER_ABORT",
                     "sardana_end": {"sardana_status": "Abort", "error": 3}}
    info = build_scan_info(ascan_desc()) | added
    validate_scan_info(info)
    json.dumps(info, allow_nan=False)


def test_validate_scan_info_rejects_bad_info():
    info = build_scan_info(ascan_desc())
    with pytest.raises(ValueError, match="ScanInfoDict"):
        validate_scan_info({k: v for k, v in info.items() if k != "title"})
    with pytest.raises(ValueError, match="plots"):
        validate_scan_info(info | {"plots": [{"kind": "image-plot", "items": []}]})
    with pytest.raises(ValueError, match="end_reason"):
        validate_scan_info(info | {"end_reason": "CRASHED"})


def test_json_safe():
    value = {1: (np.float32(1.5), np.bool_(True), math.inf), "e": EndReason.SUCCESS, "o": object}
    assert json_safe(value) == {"1": [1.5, True, None], "e": "SUCCESS", "o": str(object)}
