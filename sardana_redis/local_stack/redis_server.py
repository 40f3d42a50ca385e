"""A throwaway Redis Stack server on loopback, for tests, benchmarks and the demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from sardana_redis.local_stack.tango_db import terminate_process_group
from sardana_redis.redis_stack import RedisStack, find_redis_stack, server_command


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RedisStackServer:
    """A throwaway Redis Stack on loopback, for tests, benchmarks and the demo.

    Runs in its own process group with its data and log in ``workdir``;
    persistence is off unless ``persistence`` is True.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        maxmemory: str = "1gb",
        persistence: bool = False,
        stack: RedisStack | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.maxmemory = maxmemory
        self.persistence = persistence
        self.stack = stack or find_redis_stack()
        self.log_file = self.workdir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "RedisStackServer":
        """Start the server and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        extra = ["--logfile", str(self.log_file)]
        if not self.persistence:
            extra += ["--save", "", "--appendonly", "no"]
        cmd = server_command(
            self.stack, port=self.port, bind="127.0.0.1", data_dir=self.workdir,
            maxmemory=self.maxmemory, extra=extra,
        )
        self.process = subprocess.Popen(
            cmd, cwd=self.workdir, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}, see {self.log_file}"
                    )
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server not ready, see {self.log_file}")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (Redis shuts down cleanly), SIGKILL if it hangs."""
        if self.process is not None:
            terminate_process_group(self.process, "redis-server", timeout)

    def kill(self) -> None:
        """SIGKILL the server (crash simulation)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "RedisStackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
