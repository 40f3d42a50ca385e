"""RedisBlissRecorder in a real Sardana: every scan published, equal to what Sardana wrote."""

from __future__ import annotations

import json
import os
import time

import pytest
from redis import Redis

from sardana_redis.datastore import init_db
from sardana_redis.local_stack.process import free_port
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.publishing.scan_info import validate_scan_info
from tests.recorder_helpers import (
    ORACLE,
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


def test_1d_and_2d_channels(door, mg_1d_2d, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)

    run_ok(door, "ascan", "mot01", 0, 1, 3, 0.01)

    number = last_scan_id(door)
    published = read_published(redis_url, number, tmp_path)
    oracle = oracle_measurement(scan_dir, number)
    assert oracle["oned01"].ndim == 2 and oracle["twod01"].ndim == 3
    assert_same_data(published, oracle)
    info = published.info
    validate_scan_info(info)
    assert info["channels"]["oned01"]["dim"] == 1
    assert info["channels"]["twod01"]["dim"] == 2
    # only 1D/2D channels plotted: the first counter as curve; oned01 has no 1D x axis, so no
    # "1d-plot" (Flint's parser fails on one without x): Flint infers it (tests/test_flint_parser.py)
    assert info["plots"] == [{"kind": "curve-plot", "items": [
        {"kind": "curve", "x": "mot01", "y": "ct01"}]}]


def test_scan_stopped_by_the_user(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run = door.start("ascan", "mot01", 0, 1, 200, 0.02).wait_status("step")
    time.sleep(0.5)

    result = run.stop()

    assert result.stopped
    number = last_scan_id(door)
    published = read_published(redis_url, number, tmp_path)
    assert published.meta["state"] == "CLOSED"
    assert published.info["end_reason"] == "USER_ABORT"
    oracle = oracle_measurement(scan_dir, number)
    assert 0 < len(oracle["mot01"]) < 201
    assert_same_data(published, oracle)


def test_one_sardana_scan_is_one_blissdata_scan_with_its_files(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir,
              ScanFile=[ORACLE, "scans.h5", "scans.dat", "other.dat"],
              ScanRecorder=["NXscanH5_FileRecorder", "RedisBlissRecorder", "RedisBlissRecorder"])

    run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)

    number = last_scan_id(door)
    published = read_published(redis_url, number, tmp_path)  # asserts a single scan
    requested = published.info["sardana"]["requested_files"]
    assert requested == [{"path": str(scan_dir / "scans.h5"), "format": "nexus"},
                         {"path": str(scan_dir / "scans.dat"), "format": "spec"}]
    assert published.meta["identity"]["path"] == str(scan_dir / "scans.h5")
    assert list(published.info["h5maps"]) == [str(scan_dir / "scans.h5")]
    assert (scan_dir / "other.dat").exists()  # Sardana's SPEC recorder still serves it
    assert_same_data(published, oracle_measurement(scan_dir, number))


def _recorder_lines(result) -> list[str]:
    return [w for w in result.warning + result.output if "RedisBlissRecorder" in w]


def test_redis_down_at_scan_start(door, scan_dir, tmp_path):
    """A scan started while Redis is down runs normally; its points wait in the spool,
    and the scan is created, filled and closed as soon as Redis is there."""
    redis = RedisStackServer(tmp_path / "redis", port=free_port())
    configure(door, redis.url, scan_dir)
    try:
        result = door.run("ascan", "mot01", 0, 1, 4, 0.01)

        assert result.ok, result.error
        lines = _recorder_lines(result)
        assert any("Redis unreachable: buffering locally" in w for w in lines), lines
        number = last_scan_id(door)
        oracle = oracle_measurement(scan_dir, number)
        assert len(oracle["mot01"]) == 5
        redis.start()  # Redis comes: the scan is published whole, with its real end
        init_db(redis.url)  # (the publisher does it too: the reader must not race it)
        published = read_published(redis.url, number, tmp_path, timeout=60)
        assert_same_data(published, oracle)
        assert published.info["end_reason"] == "SUCCESS"
    finally:
        redis.stop()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_redis_killed_during_a_scan(door, sardana_server, scan_dir, tmp_path):
    """Redis SIGKILLed mid-scan and started again empty: the scan goes on, one warning,
    and the publisher publishes the scan again whole from its spool: Redis ends up with
    every point Sardana measured; no blissdata thread is left behind."""
    redis = RedisStackServer(tmp_path / "redis")
    redis.start()
    try:
        configure(door, redis.url, scan_dir)
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)  # warm up: DataStore cached
        threads_before = _threads(sardana_server.pid)
        run = door.start("ascan", "mot01", 0, 1, 60, 0.05).wait_status("step")
        time.sleep(0.5)
        redis.kill()
        time.sleep(3)
        redis.start()
        init_db(redis.url)  # (the publisher does it too: the reader must not race it)

        result = run.wait(120)

        assert result.ok, result.error
        warnings = [w for w in result.warning if "RedisBlissRecorder" in w]
        assert any("Redis unreachable" in w for w in warnings), warnings
        number = last_scan_id(door)
        oracle = oracle_measurement(scan_dir, number)
        assert len(oracle["mot01"]) == 61
        published = read_published(redis.url, number, tmp_path, timeout=60)
        assert_same_data(published, oracle)
        assert published.info["end_reason"] == "SUCCESS"
        assert published.info["republished_from"]
        deadline = time.monotonic() + 20
        while _threads(sardana_server.pid) > threads_before + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _threads(sardana_server.pid) <= threads_before + 2
    finally:
        redis.stop()


def test_scans_inside_another_macro(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)

    run_ok(door, "repeat", 2, ["ascan mot01 0 1 3 0.01"])

    last = last_scan_id(door)
    for number in (last - 1, last):
        published = read_published(redis_url, number, tmp_path)
        assert published.info["end_reason"] == "SUCCESS"
        assert_same_data(published, oracle_measurement(scan_dir, number))


@pytest.fixture
def twod_value_refs(door, mg_1d_2d, scan_dir):
    """twod01 publishes references to (not yet saved) image files instead of images."""
    pattern = f"h5file://{scan_dir}/twod01_{{index:03d}}.h5"
    run_ok(door, "set_meas_conf", "valuerefpattern", pattern, ["twod01"], mg_1d_2d)
    run_ok(door, "set_meas_conf", "valuerefenabled", "True", ["twod01"], mg_1d_2d)
    yield pattern
    run_ok(door, "set_meas_conf", "valuerefenabled", "False", ["twod01"], mg_1d_2d)


def test_value_references(door, twod_value_refs, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)

    run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)

    number = last_scan_id(door)
    published = read_published(redis_url, number, tmp_path)
    refs = [json.loads(v) for v in published.streams["twod01"]]
    oracle = oracle_measurement(scan_dir, number)
    # Sardana keeps the references under "_twod01" when it cannot build its VDS
    assert refs == [v.decode() for v in oracle.get("twod01", oracle.get("_twod01"))]
    assert refs[0].startswith(f"h5file://{scan_dir}/twod01_")
    column = next(c for c in published.info["sardana"]["columns"] if c["stream"] == "twod01")
    assert column["value_ref_enabled"] is True


def test_redis_full_during_a_scan(door, mg_1d_2d, scan_dir, tmp_path):
    """Redis refuses writes (maxmemory reached): the scan goes on, one warning, nothing is
    dropped: once Redis accepts writes again the scan is whole and closed as SUCCESS."""
    run_ok(door, "set_meas_conf", "enabled", "False", ["twod01"], mg_1d_2d)
    redis = RedisStackServer(tmp_path / "redis", maxmemory="4mb")
    redis.start()
    try:
        configure(door, redis.url, scan_dir)
        result = door.run("ascan", "mot01", 0, 1, 400, 0.001, timeout=300)

        assert result.ok, result.error
        warnings = [w for w in result.warning if "RedisBlissRecorder" in w]
        assert any("Redis is full" in w for w in warnings), warnings
        number = last_scan_id(door)
        oracle = oracle_measurement(scan_dir, number)
        assert len(oracle["mot01"]) == 401
        client = Redis.from_url(redis.url)
        client.config_set("maxmemory", "512mb")
        published = read_published(redis.url, number, tmp_path, timeout=90)
        assert published.meta["state"] == "CLOSED"
        assert published.info["end_reason"] == "SUCCESS"
        assert_same_data(published, oracle)
    finally:
        run_ok(door, "set_meas_conf", "enabled", "True", ["twod01"], mg_1d_2d)
        redis.stop()
