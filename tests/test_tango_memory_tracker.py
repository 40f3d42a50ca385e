"""The memory tracker's Tango device server, run as a real process on a real Tango
database and a real Redis (the session server: maxmemory 1 GiB)."""

from __future__ import annotations

import pytest
import redis
import tango

from tests.publish import publish
from tests.tango_servers import device_server, free_port, wait_for

SERVER = "RedisMemoryTracker"


def test_tracks_then_off_after_stop(tango_db, redis_url, tmp_path):
    properties = {"redis_url": redis_url, "monitoring_period": "0.2"}
    with device_server(tango_db, tmp_path, SERVER, "main",
                       {"test/memorytracker/main": properties}) as d:
        dev = d["test/memorytracker/main"]
        wait_for(lambda: dev.state() == tango.DevState.ON, "State ON")
        assert "Tracking 0 scans" in dev.status()
        assert dev.MaxMemory == 1024**3
        assert dev.UsedMemory > 0
        assert 0 < dev.MemoryUsage < 80
        assert dev.LastCycleTime > 0

        publish(redis_url, 1, None)
        wait_for(lambda: dev.TrackedScans == 1, "TrackedScans to be 1")
        wait_for(lambda: dev.ExpiredScans == 1, "the closed scan to expire (no writer)")
        assert "Tracking 1 scans" in dev.status()
        assert (dev.FreedBytes, dev.DroppedUnsavedScans, dev.DroppedUnsavedEntries,
                dev.ClosedAbandonedScans, dev.LastDrop) == (0, 0, 0, 0, "")

        dev.Stop()
        assert dev.state() == tango.DevState.OFF
        assert "Stop" in dev.status()
        dev.Start()
        wait_for(lambda: dev.state() == tango.DevState.ON, "State ON again")
        assert dev.TrackedScans == 1


def test_unreachable_redis_and_invalid_properties(tango_db, redis_url, tmp_path):
    dead_url = f"redis://127.0.0.1:{free_port()}"
    devices = {"test/memorytracker/deadredis": {"redis_url": dead_url},
               "test/memorytracker/threshold": {"redis_url": redis_url,
                                                "cleaning_threshold": "150"},
               "test/memorytracker/nomax": {"redis_url": redis_url},
               "test/memorytracker/maxprop": {"redis_url": redis_url, "max_memory": "512mb"}}
    client = redis.Redis.from_url(redis_url)
    maxmemory = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 0)
    try:
        with device_server(tango_db, tmp_path, SERVER, "broken", devices) as d:
            dead = d["test/memorytracker/deadredis"]
            wait_for(lambda: "Redis unreachable" in dead.status(),
                     "Status to say Redis is unreachable")
            assert dead.state() == tango.DevState.ALARM

            threshold = d["test/memorytracker/threshold"]
            assert threshold.state() == tango.DevState.FAULT
            assert threshold.status() == (
                "Invalid configuration: the cleaning_threshold property must be between "
                "1 and 100. Fix the device properties, then run Init.")
            with pytest.raises(tango.DevFailed, match="invalid configuration"):
                threshold.Start()

            nomax = d["test/memorytracker/nomax"]
            wait_for(lambda: nomax.state() == tango.DevState.FAULT, "no maxmemory: FAULT")
            assert "no 'maxmemory'" in nomax.status()
            assert "the max_memory property" in nomax.status()

            maxprop = d["test/memorytracker/maxprop"]
            wait_for(lambda: maxprop.state() == tango.DevState.ON, "max_memory property: ON")
            assert maxprop.MaxMemory == 512 * 1024**2
    finally:
        client.config_set("maxmemory", maxmemory)
        client.close()
