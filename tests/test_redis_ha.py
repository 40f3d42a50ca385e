"""Redis high availability with Redis Sentinel: the throwaway set (RedisHA) fails over
with blissdata's data, the `server --replica-of` and `sentinel` subcommands really run one,
and no promotion ever rewrites the bundled blredis.conf."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import signal
import stat
import time
from pathlib import Path

import pytest
import redis

from sardana_redis.datastore import init_db
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.process import free_port
from sardana_redis.local_stack.services import ServiceProcess
from sardana_redis.redis_stack import (
    SentinelSettings, default_config, find_redis_stack, node_config, parse_host_port,
    sentinel_config,
)
from tests.doc_commands import ROOT, documented_commands, substitute


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def has_replicaof(config: Path) -> bool:
    return any(line.split()[:1] == ["replicaof"] for line in config.read_text().splitlines())


@pytest.mark.parametrize("text, expected", [
    ("h1:6380", ("h1", 6380)), ("h1", ("h1", 6379)), ("10.0.0.5:7000", ("10.0.0.5", 7000)),
    ("[::1]:6380", ("::1", 6380)), ("::1", ("::1", 6379)),
])
def test_parse_host_port(text, expected):
    assert parse_host_port(text) == expected


def test_node_config_is_an_own_copy_made_once(tmp_path):
    source = tmp_path / "site.conf"
    source.write_text("maxmemory 2gb\n")
    copy, made = node_config(tmp_path / "data", source, ("h1", 6379))
    assert made and copy == tmp_path / "data" / "blredis.conf"
    assert "maxmemory 2gb\n" in copy.read_text() and has_replicaof(copy)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # a rewrite saves passwords into it
    # What Redis rewrote is kept, except the Stack's modules (passed on the command line).
    copy.write_text("port 7000\nloadmodule /x/lib/rejson.so\nloadmodule /y/other.so\n")
    assert node_config(tmp_path / "data", source, ("h2", 1)) == (copy, False)
    assert copy.read_text() == "port 7000\nloadmodule /y/other.so\n"


def test_sentinel_config_is_written_once(tmp_path):
    path, made = sentinel_config(tmp_path, ("h1", 6379), SentinelSettings(quorum=2))
    assert made
    assert "sentinel resolve-hostnames yes\nsentinel monitor sardana h1 6379 2\n" in path.read_text()
    path.write_text("what sentinel learnt\n")
    assert sentinel_config(tmp_path, ("h9", 1), SentinelSettings()) == (path, False)
    assert path.read_text() == "what sentinel learnt\n"


def test_killed_primary_is_replaced_with_blissdata_data(redis_ha: RedisHA):
    bundled = fingerprint(default_config())
    init_db(redis_ha.primary_url)
    old = redis_ha.primary()
    client = redis.Redis.from_url(redis_ha.primary_url)
    (replica,) = redis_ha.replicas()
    redis_ha.pause(replica)
    client.set("probe", "measured")
    assert client.wait(1, 200) == 0  # a paused replica acknowledges nothing
    redis_ha.resume(replica)
    assert client.wait(1, 5000) == 1
    client.close()

    died = redis_ha.kill_primary()
    new = redis_ha.wait_promoted(old)
    print(f"promoted {time.monotonic() - died:.2f} s after SIGKILL")
    assert new is not old and not old.running
    client = redis.Redis.from_url(redis_ha.primary_url)
    assert client.get("_PROTOCOL_VERSION_") is not None
    assert b"esrf:scan:index" in client.execute_command("FT._LIST")
    assert client.get("probe") == b"measured"
    client.close()
    assert not has_replicaof(new.workdir / "blredis.conf")  # Sentinel rewrote its own copy

    redis_ha.restart(old)  # back as a replica, with the data
    with redis.Redis(port=old.port) as back:
        assert back.role()[0] == b"slave" and back.get("probe") == b"measured"
    assert fingerprint(default_config()) == bundled


def test_planned_failover_keeps_both_nodes(redis_ha: RedisHA):
    """high-availability.md's redis-cli lines: the planned failover, then the checks."""
    cli = find_redis_stack().server.with_name("redis-cli")
    lines = [c.text for c in documented_commands()
             if c.doc == "docs/high-availability.md" and c.text.startswith("redis-cli -h")]
    sentinel = redis_ha.sentinels[0].port

    def run(line: str, node_port: int) -> str:
        here = substitute(line, {"-h h1": "-h 127.0.0.1"},
                          {"-p 26379": f"-p {sentinel}", "-p 6379": f"-p {node_port}"})
        out = subprocess.run([str(cli), *shlex.split(here)[1:]], capture_output=True,
                             text=True, timeout=30, check=True)
        return out.stdout

    old = redis_ha.primary()
    (failover,) = [line for line in lines if line.endswith("sentinel failover sardana")]
    assert run(failover, old.port).strip() == "OK"
    new = redis_ha.wait_promoted(old)
    assert new is not old and old.running
    redis_ha.wait_replicas_synced()  # Sentinel turns the old primary into a replica
    assert redis_ha.replicas() == [old]
    checks = [line for line in lines if line != failover]
    assert len(checks) == 3
    for line in checks:
        out = run(line, new.port)
        if "get-master-addr-by-name" in line:
            assert out.split() == ["127.0.0.1", str(new.port)]
        elif "sentinel replicas" in line:
            assert str(old.port) in out.split()
        else:
            assert "role:master" in out and f"port={old.port},state=online" in out


@pytest.mark.stack
def test_server_and_sentinel_subcommands_fail_over(tmp_path):
    """`server`, `server --replica-of` and a `sentinel` (quorum 1) as processes: the replica
    is promoted when the primary is SIGKILLed, each server rewrote only its own config
    copy, and a restarted sentinel goes on from the config it rewrote."""
    bundled = fingerprint(default_config())
    ports = {name: free_port() for name in ("a", "b", "sentinel")}

    def server(name: str, *more: str) -> ServiceProcess:
        args = ["--port", str(ports[name]), "--dir", str(tmp_path / name), "--maxmemory", "64mb",
                *more]
        return ServiceProcess("server", args, tmp_path / f"{name}.log").start(
            "Ready to accept connections")

    def sentinel() -> ServiceProcess:
        args = ["--monitor", f"localhost:{ports['a']}", "--quorum", "1",  # a host name
                "--port", str(ports["sentinel"]), "--dir", str(tmp_path / "sentinel")]
        return ServiceProcess("sentinel", args, tmp_path / "sentinel.log").start("+monitor master")

    a = server("a")
    b = server("b", "--replica-of", f"127.0.0.1:{ports['a']}")
    assert has_replicaof(tmp_path / "b" / "blredis.conf")
    watcher = redis.Redis(port=ports["sentinel"], decode_responses=True)
    first = sentinel()
    until(lambda: watcher.sentinel_master("sardana")["num-slaves"] == 1, "replica known")
    os.killpg(a.process.pid, signal.SIGKILL)
    until(lambda: watcher.sentinel_get_master_addr_by_name("sardana")[1] == ports["b"],
          "b promoted")
    with redis.Redis(port=ports["b"]) as b_client:
        until(lambda: b_client.role()[0] == b"master", "b says master")
    assert not has_replicaof(tmp_path / "b" / "blredis.conf")  # rewritten on promotion
    assert fingerprint(default_config()) == bundled

    first.stop()
    sentinel()  # the same --monitor (a), but its rewritten config knows better
    assert watcher.sentinel_get_master_addr_by_name("sardana")[1] == ports["b"]
    watcher.close()
    # The rewritten copy loads the Stack's modules too: b starts again all the same.
    assert "loadmodule" in (tmp_path / "b" / "blredis.conf").read_text()
    b.stop()
    server("b", "--replica-of", f"127.0.0.1:{ports['a']}")
    with redis.Redis(port=ports["b"]) as b_client:
        assert b_client.role()[0] == b"master"  # the role of its copy, not --replica-of


def documented_config(header: str, values: dict[str, str]) -> str:
    """The config block of high-availability.md that starts with ``header``, site values
    replaced by the test's."""
    text = (ROOT / "docs" / "high-availability.md").read_text()
    block = re.search(rf"```ini\n({re.escape(header)}.*?)```", text, re.S).group(1)
    return substitute(block, values)


@pytest.mark.stack
def test_documented_acl_users_replicate_and_fail_over(tmp_path):
    """The replica and sentinel users of high-availability.md: replication, a failover and
    the old primary's return as a replica work with exactly their rules (ACL LOG empty)."""
    sha = {role: hashlib.sha256(f"{role}-pw".encode()).hexdigest() for role in ("replica", "sentinel")}
    files = {
        "users.conf": {"#REPLICA_SHA256": f"#{sha['replica']}",
                       "#SENTINEL_SHA256": f"#{sha['sentinel']}"},
        "replication.conf": {"the-replica-password": "replica-pw"},
        "sentinel-auth.conf": {"the-sentinel-password": "sentinel-pw"},
    }
    for name, values in files.items():
        text = documented_config(f"# /etc/sardana-redis/{name}", values)
        (tmp_path / name).write_text(text)
    with RedisHA(tmp_path / "ha", include=[tmp_path / "users.conf", tmp_path / "replication.conf"],
                 sentinel_include=[tmp_path / "sentinel-auth.conf"]) as ha:
        old = ha.primary()
        ha.kill_primary()
        ha.wait_promoted(old)
        ha.restart(old)
        with redis.Redis.from_url(ha.primary_url) as client:  # logged in as those users
            # (a promotion kills the clients of the node: the sentinels log in again)
            until(lambda: {"replica", "sentinel"} <= {c["user"] for c in client.client_list()},
                  "the replica and the sentinels logged in")
        for server in ha.servers:
            with redis.Redis(port=server.port) as client:
                assert client.acl_log() == [], server.port


def until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
