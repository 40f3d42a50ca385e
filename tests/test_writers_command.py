"""``sardana-redis writers``: each writer's instances, alive or not, lag, failures and
what they wait for, read from the heartbeats the writers keep in their ledgers."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys
from pathlib import Path

from tests.h5_readers import Reader
from tests.reliability.service_stack import stacks, wait_for  # noqa: F401 (stacks: a fixture)

pytestmark = pytest.mark.stack  # starts servers or runs the commands in processes


def writers(url: str, *options: str) -> str:
    return subprocess.run([sys.executable, "-m", "sardana_redis", "writers", "--redis-url", url,
                           *options], check=True, capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60).stdout


def test_writers_command_shows_alive_waiting_and_stopped(stacks):
    stack = stacks()
    stack.start_all()
    first = stack.scan(1, "held")
    first.push(20)
    assert first.finish()
    stack.wait_written([first.key])
    nexus = first.files["nexus"]
    reader = Reader(Path(nexus), swmr=False)
    try:
        second = stack.scan(2, "held")
        second.push(20)
        assert second.finish()
        waiting = f"{second.key}: waiting for {nexus}: held open by another program"
        out = wait_for(lambda: o if waiting in (o := writers(stack.url)) else "", 30,
                       "the command shows what the NeXus writer waits for")
    finally:
        reader.release()
    assert "nexus-writer: alive, 1 scan(s) pending" in out
    assert "spec-writer: alive, 0 scan(s) pending" in out
    assert "heartbeat" in out and "lag 0 point(s)" in out and "0 failed" in out
    stack.wait_written([second.key])
    stack.services["spec-writer"].stop()
    out = writers(stack.url, "--writer", "never-started")
    assert "spec-writer: NOT ALIVE" in out and ": stopped, heartbeat" in out
    assert "nexus-writer: alive, 0 scan(s) pending" in out
    assert "never-started: NOT ALIVE, 0 scan(s) pending\n  no heartbeat ever" in out
