"""The SPEC writer's Tango device server, run as a real process on a real Tango database."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tango
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from sardana_redis.local_stack.tango_db import (
    local_server_env,
    make_unix_socket_dir,
    remove_unix_socket_dir,
)
from sardana_redis.tango_registration import add_tango_register_parser
from tests.h5_readers import Reader
from tests.tango_servers import device_server, free_port, wait_for, writer_properties

SERVER = "RedisSpecWriter"


def publish_scan(redis_url: str, path: Path, number: int = 1, fmt: str = "spec") -> str:
    """A 3-point ascan, published and closed with blissdata, requesting the file ``path``
    of format ``fmt``."""
    store = DataStore(redis_url)
    scan = store.create_scan(
        {"name": "ascan", "number": number, "data_policy": "no_policy", "session": "s"},
        info={"title": "ascan mot01 0 1 2 0.1",
              "sardana": {"requested_files": [{"path": str(path), "format": fmt}]}})
    streams = {name: scan.create_stream(Stream.make_definition(name, dtype))
               for name, dtype in (("#Pt No", "int64"), ("mot01", "float64"), ("ct01", "float64"))}
    scan.prepare()
    scan.start()
    streams["#Pt No"].send(np.arange(3, dtype=np.int64))
    streams["mot01"].send(np.array([0.0, 0.5, 1.0]))
    streams["ct01"].send(np.array([10.0, 11.0, 12.0]))
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    return scan.key


def test_on_follows_then_off_after_stop(tango_db, redis_url, tmp_path):
    with device_server(tango_db, tmp_path, SERVER, "startstop",
                       {"test/specwriter/startstop": writer_properties(redis_url, tmp_path)}) as d:
        dev = d["test/specwriter/startstop"]
        wait_for(lambda: "following" in dev.status(), "Status to say following")
        assert dev.state() == tango.DevState.ON
        dev.Stop()
        assert dev.state() == tango.DevState.OFF
        assert "Stop" in dev.status()
        dev.Start()
        wait_for(lambda: "following" in dev.status(), "Status to say following again")
        assert dev.state() == tango.DevState.ON


def test_unreachable_redis_and_missing_root_dirs(tango_db, tmp_path):
    dead_url = f"redis://127.0.0.1:{free_port()}"
    devices = {"test/specwriter/deadredis": writer_properties(dead_url, tmp_path),
               "test/specwriter/noroot": {"redis_url": dead_url}}
    with device_server(tango_db, tmp_path, SERVER, "broken", devices) as d:
        dead, noroot = d["test/specwriter/deadredis"], d["test/specwriter/noroot"]
        wait_for(lambda: "Redis unreachable" in dead.status(), "Status to say Redis is unreachable")
        assert dead.state() == tango.DevState.ALARM

        assert noroot.state() == tango.DevState.FAULT
        assert "root_dirs property is not set" in noroot.status()
        with pytest.raises(tango.DevFailed, match="invalid configuration"):
            noroot.Start()
        assert noroot.state() == tango.DevState.FAULT


def test_scan_written(tango_db, redis_url, tmp_path):
    root = tmp_path / "scans"
    with device_server(tango_db, tmp_path, SERVER, "scan",
                       {"test/specwriter/scan": writer_properties(redis_url, root)}) as d:
        dev = d["test/specwriter/scan"]
        wait_for(lambda: "following" in dev.status(), "Status to say following")
        key = publish_scan(redis_url, root / "t.dat")
        wait_for(lambda: dev.ScansWritten == 1, "ScansWritten to be 1")
        assert dev.ScansFailed == 0
        assert dev.LastScan == key
        assert list(dev.LastFiles) == [str(root / "t.dat")]
        assert dev.ActiveScans == 0
        assert dev.LagPoints == 0
    lines = (root / "t.dat").read_text().splitlines()
    assert "#S 1 ascan mot01 0 1 2 0.1" in lines
    labels = next(line for line in lines if line.startswith("#L ")).split()[1:]
    rows = [[float(v) for v in line.split()] for line in lines
            if line.strip() and not line.startswith(("#", "@"))]
    assert len(rows) == 3
    columns = {label: [row[i] for row in rows] for i, label in enumerate(labels)}
    assert columns == {"Pt_No": [0.0, 1.0, 2.0], "mot01": [0.0, 0.5, 1.0], "ct01": [10.0, 11.0, 12.0]}


def test_nexus_status_while_a_reader_holds_the_file(tango_db, redis_url, tmp_path):
    """A file held open by a reader (h5py, HDF5 file locking on): ALARM, and Status says
    what the writer waits for; ON again and the scan written once the reader lets go."""
    root = tmp_path / "scans"
    path = root / "t.h5"
    with device_server(tango_db, tmp_path, "RedisNexusWriter", "held",
                       {"test/nexuswriter/held": writer_properties(redis_url, root)}) as d:
        dev = d["test/nexuswriter/held"]
        wait_for(lambda: "following" in dev.status(), "Status to say following")
        publish_scan(redis_url, path, 1, "nexus")
        wait_for(lambda: dev.ScansWritten == 1, "the first scan written")
        reader = Reader(path, swmr=False)
        try:
            key = publish_scan(redis_url, path, 2, "nexus")
            wait_for(lambda: dev.state() == tango.DevState.ALARM, "ALARM while the file is held")
            assert dev.status() == (f"1 scan(s) cannot be written now: {key}: "
                                    f"waiting for {path}: held open by another program")
            assert dev.ScansWritten == 1 and dev.ActiveScans == 1
        finally:
            reader.release()
        wait_for(lambda: dev.ScansWritten == 2, "the second scan written once the file is free")
        assert dev.state() == tango.DevState.ON and dev.ScansFailed == 0


#: Runs a WriterDevice whose follower thread dies at once, prints State/Status before
#: and after Start once it is FAULT (in its own process: a Tango server is one per process).
DYING_FOLLOWER = """
import time
from tango import DevState
from tango.test_context import DeviceTestContext
from sardana_redis.following.follower import ScanFollower
from sardana_redis.following.tango_device import WriterDevice
from sardana_redis.spec_writer.writer import SpecScanWriter

def heartbeat(self):
    raise RuntimeError("unexpected error")

ScanFollower._heartbeat = heartbeat

class Dying(WriterDevice):
    HANDLER = SpecScanWriter

with DeviceTestContext(Dying, properties={"root_dirs": ["/tmp"]}, host="127.0.0.1") as dev:
    for _ in range(2):
        deadline = time.monotonic() + 5
        while dev.state() != DevState.FAULT and time.monotonic() < deadline:
            time.sleep(0.05)
        print("STATE", dev.state(), "|", dev.status(), flush=True)
        dev.Start()
"""


@pytest.mark.stack
def test_fault_when_the_follower_thread_dies(tmp_path):
    socket_dir = make_unix_socket_dir()
    try:
        result = subprocess.run([sys.executable, "-c", DYING_FOLLOWER], capture_output=True,
                                text=True, timeout=30, env=local_server_env(tmp_path, socket_dir))
    finally:
        remove_unix_socket_dir(socket_dir)
    assert result.returncode == 0, result.stderr
    fault = ("STATE FAULT | A scan follower thread died (see the server log): "
             "run Start to follow scans again.")
    states = [line for line in result.stdout.splitlines() if line.startswith("STATE")]
    assert states == [fault, fault], result.stdout + result.stderr


def test_register_cli(tango_db, capsys):
    parser = argparse.ArgumentParser(prog="sardana-redis")
    add_tango_register_parser(parser.add_subparsers(dest="command", required=True))
    argv = ["tango-register", "RedisSpecWriter", "cli", "--device", "test/specwriter/cli",
            "--property", "root_dirs=/data/a", "--property", "root_dirs=/data/b",
            "--property", "redis_url=redis://host:6379"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "Registered test/specwriter/cli (class RedisSpecWriter) in server RedisSpecWriter/cli" in out
    assert "RedisSpecWriter cli" in out
    db = tango.Database()
    assert list(db.get_device_name("RedisSpecWriter/cli", "RedisSpecWriter")) == ["test/specwriter/cli"]
    props = db.get_device_property("test/specwriter/cli", ["root_dirs", "redis_url"])
    assert [list(props["root_dirs"]), list(props["redis_url"])] == [["/data/a", "/data/b"],
                                                                   ["redis://host:6379"]]

    # Registering again updates the given properties and keeps the others.
    args = parser.parse_args(argv[:5] + ["--property", "redis_url=redis://other:6379"])
    assert args.func(args) == 0
    props = db.get_device_property("test/specwriter/cli", ["root_dirs", "redis_url"])
    assert [list(props["root_dirs"]), list(props["redis_url"])] == [["/data/a", "/data/b"],
                                                                   ["redis://other:6379"]]

    # A device of another server is not taken over.
    with pytest.raises(RuntimeError, match="already registered in server RedisSpecWriter/cli"):
        args = parser.parse_args(["tango-register", "RedisNexusWriter", "cli",
                                  "--device", "test/specwriter/cli"])
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["tango-register", "NoSuchServer", "x", "--device", "a/b/c"])


def test_tango_server_names_the_classes(capsys):
    """``python -m sardana_redis.tango_server`` without a known class says which there are."""
    from sardana_redis.tango_server import main

    for argv in ([], ["RedisFooWriter", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert "RedisSpecWriter, RedisNexusWriter, RedisMemoryTracker" in str(exit_info.value.code)
