"""RedisBlissRecorder in a real Sardana: every scan published, equal to what Sardana wrote."""

from __future__ import annotations

import pytest

from sardana_redis.scan_info import validate_scan_info
from tests.recorder_helpers import (
    SESSION,
    assert_same_data,
    configure,
    last_scan_id,
    oracle_measurement,
    read_published,
    run_ok,
)

SCANS = {
    "ascan": ("ascan", "mot01", 0, 1, 5, 0.01),
    "a2scan": ("a2scan", "mot01", 0, 1, "mot02", 2, 3, 4, 0.01),
    "dscan": ("dscan", "mot01", -0.5, 0.5, 4, 0.01),
    "mesh": ("mesh", "mot01", 0, 1, 2, "mot02", 0, 1, 2, 0.01, False),
    "ascanct": ("ascanct", "mot01", 0, 1, 10, 0.01),
    "timescan": ("timescan", 4, 0.01),
}


@pytest.fixture(scope="module")
def plotted(door):
    """ct01 and ct02 selected for plotting in the active measurement group."""
    run_ok(door, "plotselect", ["ct01", "ct02"])


@pytest.mark.parametrize("name", SCANS)
def test_scan_is_published_like_sardana_wrote_it(name, door, plotted, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    macro, *params = SCANS[name]

    run_ok(door, macro, *params)

    number = last_scan_id(door)
    published = read_published(redis_url, number, tmp_path)
    assert published.meta["state"] == "CLOSED"
    assert published.meta["identity"]["name"] == macro
    assert published.meta["identity"]["number"] == number
    assert published.meta["identity"]["session"] == SESSION
    info = published.info
    validate_scan_info(info)
    assert info["title"].split()[0] == macro
    assert info["end_reason"] == "SUCCESS"
    assert_same_data(published, oracle_measurement(scan_dir, number))
    plots = info["plots"]
    assert len(plots) == 1
    plotted_names = {item.get("value") or item.get("y") for item in plots[0]["items"]}
    assert plotted_names == {"ct01", "ct02"}
    if name == "mesh":
        assert plots[0]["kind"] == "scatter-plot"
        assert {(i["x"], i["y"]) for i in plots[0]["items"]} == {("mot01", "mot02")}
    else:
        assert plots[0]["kind"] == "curve-plot"
        x = "dt" if name == "timescan" else "mot01"
        assert {i["x"] for i in plots[0]["items"]} == {x}
