"""The Redis Stack server: binaries, modules, the `server` subcommand."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import redis

from sardana_redis import redis_stack
from sardana_redis.local_stack.process import free_port
from sardana_redis.redis_stack import RedisStackNotFound, find_redis_stack

pytestmark = pytest.mark.stack  # starts servers or runs the commands in processes


def test_session_server_has_both_modules(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    names = {m[b"name"].decode() for m in client.module_list()}
    assert {"ReJSON", "search"} <= names
    assert client.info("server")["redis_version"] >= "7.4"
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


def test_server_subcommand_runs_in_foreground_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sardana_redis", "server", "--port", str(port),
         "--dir", str(tmp_path / "data"), "--maxmemory", "64mb"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        names = {m[b"name"].decode() for m in client.module_list()}
        assert {"ReJSON", "search"} <= names
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
        assert client.config_get("bind")["bind"].startswith("127.0.0.1")
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert b"ready to exit" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_binaries_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(redis_stack, "candidate_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(RedisStackNotFound, match="sardana-redis install-redis-stack"):
        find_redis_stack()


def test_server_subcommand_reports_missing_binaries(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sardana_redis", "server", "--redis-stack-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert "No Redis Stack binaries" in out.stderr
    assert "install-redis-stack" in out.stderr
