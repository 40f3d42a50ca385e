"""``sardana-redis web`` in a real headless Chromium during real Sardana scans: an ascan,
a mesh, a 1D+2D measurement group and a stopped scan. What the page drew (its
``window.viewerState``, read through the DevTools protocol) is compared with what
``sardana-redis plot`` chooses for the same scan and with Sardana's own NeXus file.

SARDANA_REDIS_SCREENSHOTS=<folder> saves a screenshot of each page (docs/images).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from sardana_redis.browse import load
from sardana_redis.datastore import open_data_store
from sardana_redis.scan_plot import choose_panels, numeric_shapes
from sardana_redis.web.view import decimate_frame
from tests.chromium import Chromium, chromium_path
from tests.recorder_helpers import configure, last_scan_id, oracle_measurement, run_ok
from tests.services import scan_key
from tests.web_helpers import start_web

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium (apt-get install chromium; .ci/run does)")
SCREENSHOTS = os.environ.get("SARDANA_REDIS_SCREENSHOTS")
#: the page's state once the scan is done (everything but the series and the draw times)
DONE = ("viewerState.done && viewerState.panels.length && "
        "JSON.parse(JSON.stringify(Object.assign({}, viewerState, {draws: null})))")


@pytest.fixture(scope="module")
def web(module_redis_url, tmp_path_factory):
    service, address = start_web(module_redis_url, tmp_path_factory.mktemp("web") / "web.log")
    yield address.rstrip("/")
    service.stop()


@pytest.fixture(scope="module")
def browser():
    with Chromium() as chromium:
        yield chromium


def open_scan(browser: Chromium, web: str, key: str) -> None:
    browser.open(f"{web}/scan/{urllib.parse.quote(key, safe='')}")


def screenshot(browser: Chromium, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(SCREENSHOTS) / f"web-{name}.png")


def expected_panels(url: str, key: str) -> tuple[list[dict], object]:
    """What ``sardana-redis plot`` draws for this scan (the viewer reuses its choice)."""
    scan = load(open_data_store(url, init=False), key)
    return [{"kind": p.kind, "streams": list(p.streams), "x": p.x, "y": p.y}
            for p in choose_panels(scan.info, numeric_shapes(scan))], scan


def done_state(browser: Chromium) -> dict:
    return browser.wait_for(DONE, timeout=60)


def run_and_view(door, url, scan_dir, browser, web, macro, *params) -> tuple[dict, list, object, str]:
    configure(door, url, scan_dir)
    run_ok(door, macro, *params)
    key = scan_key(url, last_scan_id(door))
    open_scan(browser, web, key)
    state = done_state(browser)
    expected, scan = expected_panels(url, key)
    assert [{k: p[k] for k in ("kind", "streams")} for p in state["panels"]] == \
        [{k: p[k] for k in ("kind", "streams")} for p in expected]
    return state, expected, scan, key


def test_ascan_curves(door, module_redis_url, scan_dir, browser, web):
    state, expected, scan, _ = run_and_view(door, module_redis_url, scan_dir, browser, web,
                                            "ascan", "mot01", 0, 1, 5, 0.01)
    oracle = oracle_measurement(scan_dir, scan.number)
    curves = state["panels"][0]
    assert curves["kind"] == "curves" and curves["points"] == 6 == len(oracle["mot01"])
    assert curves["streams"] == expected[0]["streams"] and curves["axes"] == [expected[0]["x"]]
    assert curves["xlabel"] == "mot01"  # Sardana's column label, not the stream name
    x = browser.evaluate(f"viewerState.series.values[{expected[0]['x']!r}]")
    np.testing.assert_allclose(x, oracle["mot01"])
    assert state["scan"]["state"] == "CLOSED" and state["scan"]["end_reason"] == "SUCCESS"
    assert state["scan"]["points"] == state["scan"]["npoints"] == 6
    screenshot(browser, "ascan")


def test_mesh_scatter_then_image(door, module_redis_url, scan_dir, browser, web):
    state, expected, _, _ = run_and_view(door, module_redis_url, scan_dir, browser, web,
                                         "mesh", "mot01", 0, 1, 3, "mot02", 0, 1, 2, 0.01,
                                            False)
    mesh = state["panels"][0]
    assert mesh["kind"] == "mesh" and mesh["points"] == 12
    assert mesh["axes"] == [expected[0]["x"], expected[0]["y"]]
    assert (mesh["xlabel"], mesh["ylabel"]) == ("mot01", "mot02")
    assert mesh["image"] is not None  # a full regular grid: drawn as an image
    screenshot(browser, "mesh")


def test_1d_and_2d_channels(door, module_redis_url, scan_dir, browser, web, mg_1d_2d):
    state, expected, scan, _ = run_and_view(door, module_redis_url, scan_dir, browser, web,
                                            "ascan", "mot01", 0, 1, 3, 0.01)
    by_kind = {p["kind"]: p for p in state["panels"]}
    shapes = numeric_shapes(scan)
    spectrum, image = by_kind["spectrum"], by_kind["image"]
    assert spectrum["spectrum"] == {"length": shapes[spectrum["streams"][0]][0], "point": 3}
    assert 1 <= spectrum["waterfall_rows"] <= 4
    frame = image["frame"]
    assert frame["point"] == 3 and frame["source_shape"] == list(shapes[image["streams"][0]])
    assert max(frame["shape"]) <= 256
    # the last frame, as the server reduces it (block means): the page drew that one
    expected = decimate_frame(scan.streams[image["streams"][0]][3])
    assert frame["shape"] == expected["shape"]
    assert (frame["min"], frame["max"]) == pytest.approx((expected["min"], expected["max"]))
    screenshot(browser, "1d-2d")


def test_stopped_scan_followed_live(door, module_redis_url, scan_dir, browser, web):
    configure(door, module_redis_url, scan_dir)
    run = door.start("ascan", "mot01", 0, 1, 200, 0.02).wait_status("step")
    key = scan_key(module_redis_url, last_scan_id(door))
    open_scan(browser, web, key)
    live = browser.wait_for("viewerState.scan.state === 'STARTED' && viewerState.scan.points > 2 "
                            "&& viewerState.scan", timeout=30)
    assert live["npoints"] == 201
    assert run.stop().stopped
    state = done_state(browser)
    oracle = oracle_measurement(scan_dir, last_scan_id(door))
    assert state["scan"]["end_reason"] == "USER_ABORT"
    assert state["panels"][0]["points"] == len(oracle["mot01"]) < 201
    assert browser.evaluate("viewerState.messages") > 2  # pushed while it ran
    screenshot(browser, "stopped")
    # the list page: this module's scans, most recent first, the stopped one with its reason
    browser.open(f"{web}/?session=tests")
    rows = browser.wait_for("document.querySelectorAll('#scans tbody tr').length >= 4 && "
                            "[...document.querySelectorAll('#scans tbody tr')]"
                            ".map(r => [...r.cells].map(c => c.textContent))")
    assert rows[0][0] == str(last_scan_id(door)) and rows[0][3:] == [
        "CLOSED", str(len(oracle["mot01"])), rows[0][5], "USER_ABORT"]
    screenshot(browser, "list")
