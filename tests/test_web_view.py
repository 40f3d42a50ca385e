"""The live viewer's pure parts: what is drawn, decimation, the bounded series, coalescing."""

import base64

import numpy as np
import pytest

from sardana_redis.scan_plot import Panel
from sardana_redis.web.feeds import ScanCursor, ScanFeed, _Heavy
from sardana_redis.web.view import (
    Series,
    Waterfall,
    decimate_frame,
    decimate_row,
    json_floats,
    panel_views,
    send_delay,
)

OUR_INFO = {
    "plots": [{"kind": "curve-plot", "items": [{"kind": "curve", "x": "axis:mot01", "y": "ct:ct01"}]}],
    "sardana": {"columns": [{"stream": "axis:mot01", "label": "mot01"},
                            {"stream": "ct:ct01", "label": "ct01"}]},
}


def test_curves_of_our_scan_with_sardana_labels():
    views, left_out = panel_views(OUR_INFO, {"axis:mot01": (), "ct:ct01": (),
                                             "spec:mca": (1024,), "lima:img": (64, 32)})
    assert left_out == {}
    assert [v.panel for v in views] == [Panel("curves", ("ct:ct01",), x="axis:mot01"),
                                        Panel("spectrum", ("spec:mca",)),
                                        Panel("image", ("lima:img",))]
    desc = views[0].describe()
    assert desc["labels"] == {"ct:ct01": "ct01", "axis:mot01": "mot01"}
    assert desc["kind"] == "curves" and desc["x"] == "axis:mot01"


def test_foreign_scan_falls_back_to_its_streams():
    # a scan from another publisher: no plots, no devices, a malformed "sardana" part
    views, _ = panel_views({"sardana": "not ours"}, {"a": (), "b": (), "frame": (8, 8)})
    assert [v.panel.kind for v in views] == ["curves", "image"]
    assert views[0].labels == {}
    assert panel_views(None, {}) == ([], {})


def test_at_most_six_panels_the_others_said():
    views, left_out = panel_views({}, {f"f{i}": (4, 4) for i in range(8)})
    assert len(views) == 6 and left_out == {"f6": "more than 6 panels", "f7": "more than 6 panels"}


def test_mesh_declared_as_scatter():
    info = {"plots": [{"kind": "scatter-plot", "items": [{"x": "m1", "y": "m2", "value": "ct"}]}],
            "channels": {"m1": {"axis_points": 3}, "m2": {"axis_points": 2}}}
    (view,), _ = panel_views(info, {"m1": (), "m2": (), "ct": ()})
    assert view.describe()["grid"] == [3, 2] and view.panel.kind == "mesh"


def test_json_floats_has_no_nan():
    assert json_floats(np.array([1.0, np.nan, np.inf, 2])) == [1.0, None, None, 2.0]


def test_series_appends_and_sends_what_is_new():
    series = Series(["x", "y"], capacity=100)
    series.append("x", 0, np.arange(5.0))
    series.append("y", 0, np.arange(3.0))
    reset, values = series.since(-1, {})
    assert reset and values == {"x": [0.0, 1, 2, 3, 4], "y": [0.0, 1, 2]}
    series.append("y", 3, np.arange(3.0, 6))
    reset, values = series.since(0, {"x": 5, "y": 3})
    assert not reset and values == {"x": [], "y": [3.0, 4, 5]}
    series.append("y", 4, np.array([4.0, 5, 6]))  # overlapping: only the new point is kept
    series.append("x", 8, np.array([8.0]))  # a gap (expired points): None
    assert series.values["y"] == [0.0, 1, 2, 3, 4, 5, 6]
    assert series.values["x"][5:] == [None, None, None, 8.0]
    assert series.points == 9


def test_series_stays_bounded_by_halving():
    series = Series(["x"], capacity=10)
    for start in range(0, 1000, 7):
        series.append("x", start, np.arange(start, start + 7, dtype=float))
    kept = series.values["x"]
    assert len(kept) <= 10 and series.stride == 128 and series.generation == 7
    assert kept == [float(i) for i in range(0, 1001, 128) if i < 1001]  # every stride-th point
    assert series.since(0, {"x": 3})[0]  # a client of an older generation starts again


def test_decimate_frame_never_sends_a_full_frame():
    frame = np.arange(1000 * 600, dtype=np.int32).reshape(1000, 600)
    out = decimate_frame(frame, max_side=256)
    assert out["source_shape"] == [1000, 600] and out["shape"] == [250, 200]
    pixels = np.frombuffer(base64.b64decode(out["data"]), np.uint8).reshape(250, 200)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert out["min"] == pytest.approx(frame[:4, :3].mean())
    small = decimate_frame(np.ones((4, 3)))
    assert small["shape"] == [4, 3] and small["min"] == small["max"] == 1.0
    with pytest.raises(ValueError):
        decimate_frame(np.ones(4))
    with pytest.raises(ValueError):
        decimate_frame(np.array([["a"]]))


def test_decimate_row_and_waterfall():
    assert decimate_row(np.arange(10), 5) == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert len(decimate_row(np.arange(4096), 2048)) == 2048
    waterfall = Waterfall(rows=3, max_values=2)
    for point in range(5):
        waterfall.add(point, np.full(4, point))
    assert waterfall.since(0) == [[2, [2.0, 2.0]], [3, [3.0, 3.0]], [4, [4.0, 4.0]]]
    assert waterfall.since(4) == [[4, [4.0, 4.0]]]


def test_send_delay_batches_every_period():
    assert send_delay(0.0, 10.0, 0.1) == 0
    assert send_delay(10.0, 10.04, 0.1) == pytest.approx(0.06)


def _feed() -> ScanFeed:
    """A feed whose reader thread is not started: its model is filled by hand."""
    feed = ScanFeed(store=None, key="esrf:scan:TEST")
    feed.panels = [{"kind": "curves", "streams": ["y"], "x": "x"}]
    feed.series = Series(["x", "y"])
    feed.heavy = {"img": _Heavy("image")}
    return feed


def test_a_slow_client_gets_the_updates_it_missed_coalesced():
    feed = _feed()
    fast, slow = ScanCursor(), ScanCursor()
    with feed._lock:
        feed._changed()
    assert feed.message(fast)["panels"] and feed.message(fast) is None  # nothing new
    for point in range(5):  # five updates: the fast client reads each, the slow one none
        with feed._lock:
            feed.series.append("x", point, np.array([float(point)]))
            feed.series.append("y", point, np.array([point * 2.0]))
            h = feed.heavy["img"]
            h.seen, h.last, h.version = point + 1, {"frame": point}, h.version + 1
            feed._changed()
        msg = feed.message(fast)
        assert msg["series"]["values"] == {"x": [float(point)], "y": [point * 2.0]}
        assert "panels" not in msg and msg["heavy"]["img"]["point"] == point
    msg = feed.message(slow)  # one message: every point, the last frame only
    assert msg["panels"] and msg["series"]["reset"]
    assert msg["series"]["values"]["y"] == [0.0, 2, 4, 6, 8]
    assert msg["heavy"]["img"] == {"kind": "image", "point": 4, "last": {"frame": 4}}
    assert feed.message(slow) is None
