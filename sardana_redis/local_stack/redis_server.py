"""A throwaway Redis Stack server on loopback, for tests, benchmarks and the demo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urlencode

from sardana_redis.local_stack.process import LocalProcess, free_port
from sardana_redis.redis_stack import (
    RedisStack,
    TLSFiles,
    find_redis_stack,
    node_config,
    server_command,
)

#: What redis-server logs once it accepts connections (after loading its data).
READY_LINE = "Ready to accept connections"


class RedisStackServer(LocalProcess):
    """A throwaway Redis Stack on loopback, for tests, benchmarks and the demo.

    Runs in its own process group with its data and log in ``workdir``;
    persistence is off unless ``persistence`` is True. ``include`` adds config files
    (e.g. ACL users, ``users.conf.example``); ``tls`` makes it TLS only (:attr:`url` is
    then ``rediss://`` trusting ``tls.ca``). It runs from its own copy of ``config``
    (default: the bundled ``blredis.conf``) in ``workdir`` (see
    :func:`~sardana_redis.redis_stack.node_config`); ``replica_of`` (host, port) makes it a
    replica when that copy is made.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        maxmemory: str = "1gb",
        persistence: bool = False,
        stack: RedisStack | None = None,
        include: Sequence[Path] = (),
        tls: TLSFiles | None = None,
        extra: Sequence[str] = (),
        config: Path | None = None,
        replica_of: tuple[str, int] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        super().__init__("redis-server", self.workdir / "redis.log")
        self.port = port or free_port()
        self.maxmemory = maxmemory
        self.persistence = persistence
        self.stack = stack or find_redis_stack()
        self.include = list(include)
        self.tls = tls
        self.extra = list(extra)  #: more redis-server options, e.g. ["--appendonly", "yes"]
        self.config = config
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self.user_url()

    def user_url(self, user: str | None = None, password: str | None = None) -> str:
        """The server's URL logging in as ``user`` with ``password`` (both quoted)."""
        auth = ""
        if user is not None or password is not None:
            auth = quote(user or "", safe="") + (f":{quote(password, safe='')}" if password else "")
            auth += "@"
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}"
        query = {"ssl_ca_certs": str(self.tls.ca), "ssl_cert_reqs": "required"}
        return f"rediss://{auth}127.0.0.1:{self.port}?{urlencode(query)}"

    def start(self, timeout: float = 20.0, overrides: Sequence[str] = ()) -> RedisStackServer:
        """Start the server and wait until its log says it accepts connections.

        ``overrides``: redis-server options for this start only (e.g. ``--replicaof``).

        (The log, not a PING: without a default user or with client certificates
        required, an anonymous PING cannot succeed.)
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        extra = ["--logfile", str(self.log_file)]
        if not self.persistence:
            extra += ["--save", "", "--appendonly", "no"]
        extra += [*self.extra, *overrides]
        config, _ = node_config(self.workdir, self.config, self.replica_of)
        cmd = server_command(
            self.stack, config, port=self.port, bind="127.0.0.1", data_dir=self.workdir,
            maxmemory=self.maxmemory, include=self.include, tls=self.tls, extra=extra,
        )
        # redis-server writes its own log file (--logfile): its output goes nowhere
        self.launch(cmd, cwd=self.workdir, output=Path(os.devnull))
        self.wait_until(self.logged(READY_LINE), "ready to accept connections", timeout)
        return self
