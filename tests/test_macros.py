"""The configuration macros, and the identity they give published scans."""

from __future__ import annotations

import pytest
from blissdata.redis_engine.store import DataStore

from sardana_redis.publishing.scan_info import validate_scan_info
from tests.recorder_helpers import (
    SESSION,
    assert_same_data,
    configure,
    last_scan_id,
    oracle_measurement,
    read_published,
    run_ok,
)


@pytest.fixture
def clean_info(door):
    yield
    for field in ("beamline", "proposal", "collection", "dataset"):
        run_ok(door, "redis_set_info", field, "")
    door.set_env(RedisWriteFiles=True)


def test_identity_set_by_macros_is_searchable(door, clean_info, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    run_ok(door, "redis_set_info", "proposal", "ihch1234")
    run_ok(door, "redis_set_info", "collection", "sample_a")
    run_ok(door, "redis_set_info", "dataset", "0001")
    run_ok(door, "redis_set_info", "beamline", "bl13")

    run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)

    number = last_scan_id(door)
    _, keys = DataStore(redis_url).search_existing_scans(proposal="ihch1234", collection="sample_a")
    assert len(keys) == 1
    published = read_published(redis_url, number, tmp_path)
    assert published.meta["key"] == keys[0]
    assert published.meta["identity"]["dataset"] == "0001"
    assert published.info["sardana"]["beamline"] == "bl13"
    validate_scan_info(published.info)
    assert_same_data(published, oracle_measurement(scan_dir, number))


def test_redis_config_shows_the_configuration(door, redis_url, scan_dir):
    configure(door, redis_url, scan_dir, ScanFile=["a.h5", "b.dat"],
              ScanRecorder=["RedisBlissRecorder", "RedisBlissRecorder"])
    result = run_ok(door, "redis_config")
    text = "\n".join(result.output)
    assert "blissdata ready" in text
    assert f"{scan_dir}/a.h5 (nexus)" in text and f"{scan_dir}/b.dat (spec)" in text


def test_redis_set_url_refuses_bad_urls(door, redis_url):
    door.set_env(RedisURL=redis_url)
    result = door.run("redis_set_url", "http://nowhere:1")
    assert result.raised
    assert any("not a Redis URL" in line for line in result.error)
    assert door.get_env("RedisURL") == redis_url


def test_redis_set_files_routes_to_the_recorder(door, clean_info, scan_dir):
    door.set_env(ScanDir=str(scan_dir))
    run_ok(door, "redis_set_files", ["scans.h5", "scans.dat"])
    assert list(door.get_env("ScanFile")) == ["scans.h5", "scans.dat"]
    assert list(door.get_env("ScanRecorder")) == ["RedisBlissRecorder"] * 2
    bad = door.run("redis_set_files", ["scans.txt"])
    assert bad.raised and any("unsupported file type" in line for line in bad.error)
    escaping = door.run("redis_set_files", ["../escape.h5"])
    assert escaping.raised and any("relative to ScanDir" in line for line in escaping.error)


def test_files_off_publishes_no_file_request(door, clean_info, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir, ScanFile=["oracle.h5", "scans.h5"],
              ScanRecorder=["NXscanH5_FileRecorder", "RedisBlissRecorder"])
    run_ok(door, "redis_files", "off")

    run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)

    published = read_published(redis_url, last_scan_id(door), tmp_path)
    assert published.info["sardana"]["requested_files"] == []
    assert "h5maps" not in published.info
    assert published.meta["identity"]["path"] is None


def test_enable_and_disable(door, redis_url):
    door.set_env(DataRecorder=[], ScanRecorder=[])
    run_ok(door, "redis_enable")
    assert list(door.get_env("DataRecorder")) == ["RedisBlissRecorder"]
    run_ok(door, "redis_enable")
    assert list(door.get_env("DataRecorder")) == ["RedisBlissRecorder"]
    run_ok(door, "redis_disable")
    assert list(door.get_env("DataRecorder")) == []


def test_default_session_is_the_door_name(door, redis_url, scan_dir, tmp_path):
    configure(door, redis_url, scan_dir)
    door.remove_env("RedisSession")
    try:
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
    finally:
        door.set_env(RedisSession=SESSION)
    store = DataStore(redis_url)
    _, keys = store.search_existing_scans(number=last_scan_id(door))
    assert store.load_scan(keys[0]).session == "door_sr_1"  # the Door door/sr/1


def test_redis_set_spool_and_redis_config_show_the_spool(door, redis_url, scan_dir, tmp_path):
    """The spool folder is a Sardana environment variable; redis_config shows what it holds;
    a folder that cannot be written is told, and scans are then published all the same."""
    folder = tmp_path / "spool"
    result = run_ok(door, "redis_set_spool", str(folder))
    assert door.get_env("RedisSpoolDir") == str(folder)
    assert any(f"{folder}: empty" in line for line in result.output), result.output
    config = run_ok(door, "redis_config")
    assert any(line.strip().startswith("Spool") and str(folder) in line
               for line in config.output), config.output
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    bad = run_ok(door, "redis_set_spool", str(blocked / "spool"))
    assert any("cannot be written" in line for line in bad.warning), bad.warning
    configure(door, redis_url, scan_dir)
    scan = door.run("ascan", "mot01", 0, 1, 3, 0.01)
    assert scan.ok, scan.error
    assert any("points are kept in memory only" in line for line in scan.warning), scan.warning
    number = last_scan_id(door)
    assert len(read_published(redis_url, number, tmp_path).streams["mot01"]) == 4
    run_ok(door, "redis_set_spool", "")
    with pytest.raises(KeyError):
        door.get_env("RedisSpoolDir")
