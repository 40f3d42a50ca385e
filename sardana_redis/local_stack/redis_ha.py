"""A throwaway Redis high-availability set on loopback (Redis Sentinel), for tests,
benchmarks and the demo: a primary, its replicas and the sentinels watching them."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from sardana_redis.local_stack.process import LocalProcess, free_port
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.redis_stack import (
    RedisStack,
    SentinelSettings,
    find_redis_stack,
    sentinel_command,
    sentinel_config,
)

log = logging.getLogger(__name__)


def _poll(what: str, check, timeout: float, interval: float = 0.05):
    """Call ``check()`` until it returns something true; return that, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout} s")
        time.sleep(interval)


class SentinelServer(LocalProcess):
    """One Redis Sentinel on loopback watching ``primary_port``, in its own process group;
    its config file (which Sentinel rewrites) and log in ``workdir``."""

    def __init__(self, workdir: Path, primary_port: int, settings: SentinelSettings, *,
                 port: int | None = None, stack: RedisStack | None = None,
                 include: Sequence[Path] = ()) -> None:
        self.workdir = Path(workdir)
        super().__init__("redis-sentinel", self.workdir / "sentinel.log")
        self.include = list(include)  #: more sentinel config, e.g. auth-user/auth-pass
        self.primary_port = primary_port
        self.settings = settings
        self.port = port or free_port()
        self.stack = stack or find_redis_stack()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)

    def start(self, replicas: int = 0, timeout: float = 20.0) -> SentinelServer:
        """Start, and wait until the sentinel knows the primary and ``replicas`` replicas."""
        config, _ = sentinel_config(self.workdir, ("127.0.0.1", self.primary_port), self.settings)
        cmd = sentinel_command(self.stack, config, port=self.port, bind="127.0.0.1",
                               include=self.include, extra=["--logfile", str(self.log_file)])
        self.launch(cmd, cwd=self.workdir, output=Path(os.devnull))  # it logs to --logfile

        def knows_all() -> bool:
            state = self.primary_state()
            return state is not None and state["num-slaves"] >= replicas
        self.wait_until(knows_all, f"knowing the primary and {replicas} replica(s)", timeout)
        return self

    def primary_state(self) -> dict | None:
        """``SENTINEL MASTER <service>`` as redis-py parses it, None if not answering."""
        try:
            with self.client() as client:
                return client.sentinel_master(self.settings.service)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None

    def primary_address(self) -> tuple[str, int] | None:
        """Where this sentinel says the primary is, None if it does not answer."""
        try:
            with self.client() as client:
                address = client.sentinel_get_master_addr_by_name(self.settings.service)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None
        return (address[0], int(address[1])) if address else None

    def replica_ports(self) -> set[int]:
        """Ports of the replicas this sentinel sees up and linked to the primary it knows
        (those it could promote)."""
        with self.client() as client:
            primary = client.sentinel_get_master_addr_by_name(self.settings.service)
            replicas = client.sentinel_slaves(self.settings.service)
        return {r["port"] for r in replicas
                if not (r["is_sdown"] or r["is_disconnected"]) and r["role-reported"] == "slave"
                and r["master-link-status"] == "ok" and primary
                and r["master-port"] == int(primary[1])}


class RedisHA:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a majority),
    all Redis Stack on loopback free ports, under ``workdir``. ``include``: more config of
    the data nodes (ACL users, ``masteruser``/``masterauth``); ``sentinel_include``: more
    config of the sentinels (``sentinel auth-user``/``auth-pass``).

    For tests, benchmarks and the demo of docs/high-availability.md. Each data node has
    its own copy of the bundled ``blredis.conf`` (Sentinel rewrites it) and no persistence.
    """

    def __init__(self, workdir: Path, replicas: int = 1, sentinels: int = 3,
                 service: str = "sardana", down_after_ms: int = 2000,
                 failover_timeout_ms: int = 10000, maxmemory: str = "256mb",
                 stack: RedisStack | None = None, include: Sequence[Path] = (),
                 sentinel_include: Sequence[Path] = ()) -> None:
        self.workdir = Path(workdir)
        self.stack = stack or find_redis_stack()
        self.settings = SentinelSettings(service=service, quorum=sentinels // 2 + 1,
                                         down_after_ms=down_after_ms,
                                         failover_timeout_ms=failover_timeout_ms)
        first = RedisStackServer(self.workdir / "node0", maxmemory=maxmemory, stack=self.stack,
                                 include=include)
        self.servers: list[RedisStackServer] = [first] + [
            RedisStackServer(self.workdir / f"node{i}", maxmemory=maxmemory, stack=self.stack,
                             include=include, replica_of=("127.0.0.1", first.port))
            for i in range(1, replicas + 1)
        ]
        self.sentinels = [
            SentinelServer(self.workdir / f"sentinel{i}", first.port, self.settings,
                           stack=self.stack, include=sentinel_include)
            for i in range(sentinels)
        ]

    # --- addresses ------------------------------------------------------------------

    @property
    def service(self) -> str:
        return self.settings.service

    @property
    def url(self) -> str:
        """The clients' URL: ``redis+sentinel://`` with every sentinel, then the service."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def primary_address(self) -> tuple[str, int]:
        """The primary's address as the first answering sentinel gives it."""
        for sentinel in self.sentinels:
            if sentinel.running:
                address = sentinel.primary_address()
                if address is not None:
                    return address
        raise RuntimeError("no sentinel answers")

    @property
    def primary_url(self) -> str:
        """Plain ``redis://`` URL of the current primary (asked from the sentinels)."""
        host, port = self.primary_address()
        return f"redis://{host}:{port}"

    def server_on(self, port: int) -> RedisStackServer:
        return next(s for s in self.servers if s.port == port)

    def primary(self) -> RedisStackServer:
        """The data node that the sentinels say is primary now."""
        return self.server_on(self.primary_address()[1])

    def replicas(self) -> list[RedisStackServer]:
        """The running data nodes other than the primary."""
        primary = self.primary()
        return [s for s in self.servers if s is not primary and s.running]

    # --- life cycle -----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> RedisHA:
        try:
            for server in self.servers:
                server.start()
            self.wait_replicas_synced(timeout)
            for sentinel in self.sentinels:
                sentinel.start(replicas=len(self.servers) - 1, timeout=timeout)
            # Sentinels find each other through the primary's hello messages (every 2 s).
            others = len(self.sentinels) - 1
            for sentinel in self.sentinels:
                _poll(f"sentinel {sentinel.port} knows the {others} others",
                      lambda s=sentinel: (s.primary_state() or {}).get("num-other-sentinels", 0)
                      >= others, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.send_signal(signal.SIGCONT)  # a paused node cannot exit
            server.stop()

    def __enter__(self) -> RedisHA:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults and failovers -------------------------------------------------------

    def kill_primary(self) -> float:
        """SIGKILL the primary; return the time of death (``time.monotonic()``).

        Take :meth:`primary` before, for :meth:`wait_promoted` and :meth:`restart`.
        """
        self.primary().kill()
        return time.monotonic()

    def failover(self, timeout: float = 10.0) -> RedisStackServer:
        """A planned failover (``SENTINEL FAILOVER``); return the old primary (still running).

        A sentinel answers NOGOODSLAVE while its view of the replicas is not fresh enough
        (e.g. just after a restart): asked again until ``timeout``.
        """
        old = self.primary()
        sentinel = next(s for s in self.sentinels if s.running)

        def asked() -> bool:
            with sentinel.client() as client:
                try:
                    return client.sentinel_failover(self.service)
                except redis.ResponseError as exc:
                    if not str(exc).startswith("NOGOODSLAVE"):
                        raise
                    log.info("sentinel %d: %s; its replicas: %s", sentinel.port, exc,
                             client.sentinel_slaves(self.service))
                    return False
        _poll("SENTINEL FAILOVER accepted", asked, timeout, interval=0.2)
        return old

    def wait_promoted(self, old: RedisStackServer, timeout: float = 30.0) -> RedisStackServer:
        """Wait until every running sentinel names another primary than ``old`` and that
        node answers ``ROLE`` as master; return it."""
        def promoted() -> RedisStackServer | None:
            addresses = {s.primary_address() for s in self.sentinels if s.running}
            address = addresses.pop() if len(addresses) == 1 else None
            if address is None:
                return None
            port = address[1]
            if port == old.port:
                return None
            new = self.server_on(port)
            with redis.Redis(port=port, socket_timeout=1) as client:
                return new if client.role()[0] == b"master" else None
        return _poll(f"a primary other than {old.port}", promoted, timeout)

    def wait_replicas_synced(self, timeout: float = 30.0) -> None:
        """Wait until every running data node but the primary is its replica, synced
        (link up, no sync in progress) and listed online by the primary."""
        try:
            primary = self.primary()
        except RuntimeError:  # sentinels not started yet: the first node is the primary
            primary = self.servers[0]
        replicas = [s for s in self.servers if s is not primary and s.running]

        def synced() -> bool:
            with redis.Redis(port=primary.port, socket_timeout=1) as client:
                info = client.info("replication")
            online = {info[k]["port"] for k in info if k.startswith("slave")
                      and info[k]["state"] == "online"}
            if not {r.port for r in replicas} <= online:
                return False
            for replica in replicas:
                with redis.Redis(port=replica.port, socket_timeout=1) as client:
                    mine = client.info("replication")
                if (mine.get("master_port") != primary.port or mine["master_link_status"] != "up"
                        or mine["master_sync_in_progress"]):
                    return False
            return True
        _poll("replicas synced", synced, timeout)

    def pause(self, server: RedisStackServer) -> None:
        """SIGSTOP a data node (a replica that lags, or a primary that hangs)."""
        server.send_signal(signal.SIGSTOP)

    def resume(self, server: RedisStackServer) -> None:
        server.send_signal(signal.SIGCONT)

    def restart(self, server: RedisStackServer, timeout: float = 30.0) -> None:
        """Start a stopped or killed data node again as a replica of the current primary
        (where Sentinel would put it) and wait until it is synced and the sentinels list it."""
        if server.running:
            raise ValueError(f"data node {server.port} is running")
        primary = self.primary()
        server.start(overrides=["--replicaof", "127.0.0.1", str(primary.port)])
        self.wait_replicas_synced(timeout)

        def listed() -> bool:
            return all(server.port in s.replica_ports() for s in self.sentinels if s.running)
        _poll(f"sentinels list {server.port} as a replica", listed, timeout, interval=0.2)
