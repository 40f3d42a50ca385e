"""The Tango deployment the docs show, run as documented: the ``sardana-redis
tango-register`` lines of the docs register the three servers (with their properties) in
a real Tango database, then ``RedisSpecWriter bl13``, ``RedisNexusWriter bl13`` and
``RedisMemoryTracker bl13`` (the console scripts) run against a real Redis and their
devices reach State ON."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import tango

from sardana_redis.tango_registration import SERVER_CLASSES
from tests.doc_commands import documented_commands, substitute
from tests.tango_servers import running_server, wait_for

BIN = Path(sys.executable).parent


def registrations() -> list[list[str]]:
    """Every documented ``sardana-redis tango-register`` line naming a real class."""
    return [c.words for c in documented_commands()
            if c.in_block and c.program == "sardana-redis" and c.words[1] == "tango-register"
            and c.words[2] in SERVER_CLASSES]


def servers() -> list[list[str]]:
    """Every documented ``RedisXxx INSTANCE`` line of a code block, once each."""
    lines = {tuple(c.words) for c in documented_commands()
             if c.in_block and c.program in SERVER_CLASSES}
    return [list(words) for words in sorted(lines)]


def register(words: list[str], values: dict[str, str]) -> tuple[str, str]:
    """Run one documented registration with the test's values; (device, stdout)."""
    line = substitute(" ".join(words), {"redis://blredis:6379": values["redis_url"]},
                      {"/beamline/data": values["root"]})
    argv = [str(BIN / "sardana-redis"), *line.split()[1:]]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=os.environ)
    assert out.returncode == 0, out.stderr
    return argv[argv.index("--device") + 1], out.stdout


def test_documented_registration_then_servers_on(tango_db, redis_url, tmp_path):
    classes = {words[2] for words in registrations()}
    assert classes == set(SERVER_CLASSES), "the docs must register all three servers"
    values = {"redis_url": redis_url, "root": str(tmp_path)}
    devices = {}
    for words in registrations():
        device, stdout = register(words, values)
        assert f"Registered {device} (class {words[2]}) in server {words[2]}/{words[3]}" in stdout
        devices[words[2]] = device
    db = tango.Database()
    for server_class, device in devices.items():
        assert db.get_device_property(device, "redis_url")["redis_url"][0] == redis_url
    started = {words[0] for words in servers()}
    assert started == set(SERVER_CLASSES), "the docs must start all three servers"
    with contextlib.ExitStack() as stack:
        proxies = {}
        for words in servers():
            argv = [str(BIN / words[0]), *words[1:]]
            proxies |= stack.enter_context(
                running_server(tango_db, tmp_path, argv, [devices[words[0]]]))
        for device, proxy in proxies.items():
            wait_for(lambda proxy=proxy: proxy.state() == tango.DevState.ON, f"{device} ON",
                     timeout=30)
