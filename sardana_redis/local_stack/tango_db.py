"""A throwaway Tango database: PyTango's DataBaseds server on an sqlite file.

No MariaDB is needed: ``python -m tango.databaseds.database`` serves the Tango
database API from ``$PYTANGO_DATABASE_NAME`` (an sqlite file). The sqlite file, the
Tango logs and the server's stdout/stderr go to the given work dir; omniORB's unix
sockets to a short private directory (see :func:`make_unix_socket_dir`). Helpers
here are shared with :mod:`sardana_redis.local_stack.sardana_server`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sardana_redis.local_stack.process import LocalProcess, free_port

log = logging.getLogger(__name__)

_PORT_RE = re.compile(r"Database DS listening on: host=[^,]+, port=(?P<port>\d+)")
_READY = "Ready to accept request"

#: Python that runs the DataBaseds, when not this one. The server needs PyTango >= 10.3.1
#: (``--host``, ``--print-host-port``; PyTango 9's sqlite DataBaseds deadlocks creating a new
#: database): ``make test-compat`` runs it from the main environment while Sardana runs in
#: an older one. A Tango database is a separate server: any version serves any client.
TANGO_DB_PYTHON_ENV = "SARDANA_REDIS_TANGO_DB_PYTHON"


#: Longest directory for omniORB's unix sockets that Sardana survives: Tango servers
#: always add a ``giop:unix:`` endpoint, and with a longer directory path the Sardana
#: server aborts at start with "*** buffer overflow detected ***" (measured: 39
#: characters work, 40 do not; pytest's tmp dirs are usually longer).
MAX_UNIX_SOCKET_DIR_LEN = 39


def make_unix_socket_dir() -> Path:
    """A new private directory with a short path for omniORB's unix sockets.

    Made with :func:`tempfile.mkdtemp` (so under ``$TMPDIR``, ``/tmp`` by default);
    the caller removes it (:func:`remove_unix_socket_dir`) once its server is gone.
    """
    path = Path(tempfile.mkdtemp(prefix="omni-"))
    if len(str(path)) > MAX_UNIX_SOCKET_DIR_LEN:
        path.rmdir()
        raise RuntimeError(
            f"{path} is longer than {MAX_UNIX_SOCKET_DIR_LEN} characters, "
            "too long for omniORB's unix sockets: set TMPDIR to a shorter directory"
        )
    return path


def remove_unix_socket_dir(path: Path) -> None:
    """Remove a directory made by :func:`make_unix_socket_dir` (and stale sockets in it)."""
    shutil.rmtree(path, ignore_errors=True)


def local_server_env(
    workdir: Path, unix_socket_dir: Path, tango_host: str | None = None
) -> dict[str, str]:
    """Environment for a local Tango server process that keeps its files out of the
    shared ``/tmp`` defaults.

    Tango writes its logs to ``$TANGO_LOG_PATH`` (default ``/tmp/tango-<user>``),
    redirected to ``workdir``; omniORB its unix sockets to
    ``$ORBunixTransportDirectory`` (default ``/tmp/omni-<user>``), redirected to
    ``unix_socket_dir`` (see :func:`make_unix_socket_dir`).
    """
    env = dict(os.environ)
    env["TANGO_LOG_PATH"] = str(workdir / "tango-logs")
    env["ORBunixTransportDirectory"] = str(unix_socket_dir)
    env["PYTHONUNBUFFERED"] = "1"
    if tango_host is not None:
        env["TANGO_HOST"] = tango_host
    return env


class TangoServerProcess(LocalProcess):
    """A Tango server process: omniORB's unix sockets in a short private folder (removed
    when it stops), Tango's logs in ``workdir`` (see :func:`local_server_env`)."""

    def __init__(self, name: str, workdir: Path, log_file: Path,
                 startup_timeout: float = 30.0) -> None:
        super().__init__(name, log_file, startup_timeout)
        self.workdir = Path(workdir)
        self._unix_socket_dir: Path | None = None

    def launch_server(self, cmd: list[str], tango_host: str | None = None,
                      extra_env: dict[str, str] | None = None) -> None:
        """Start ``cmd`` in ``workdir`` with the environment of a local Tango server."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._unix_socket_dir = make_unix_socket_dir()
        env = local_server_env(self.workdir, self._unix_socket_dir, tango_host)
        env.update(extra_env or {})
        self.launch(cmd, cwd=self.workdir, env=env)

    def run_server(self, cmd: list[str], ready: Callable[[], Any], what: str, *,
                   tango_host: str | None = None, extra_env: dict[str, str] | None = None,
                   poll: float = 0.05) -> Any:
        """Launch the server and wait until ``ready()`` (its value is returned); stopped
        again if it does not get there."""
        t0 = time.monotonic()
        try:
            self.launch_server(cmd, tango_host, extra_env)
            value = self.wait_until(ready, what, poll=poll)
        except BaseException:
            self.stop()
            raise
        log.info("%s ready (pid %s) in %.1f s", self.name, self.pid, time.monotonic() - t0)
        return value

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (its whole process group). Safe to call twice."""
        super().stop(timeout)
        if self._unix_socket_dir is not None:
            remove_unix_socket_dir(self._unix_socket_dir)
            self._unix_socket_dir = None


class TangoDatabase(TangoServerProcess):
    """PyTango's sqlite Tango database server, on 127.0.0.1 and a free port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with TangoDatabase(workdir) as db:
            os.environ["TANGO_HOST"] = db.tango_host

    :meth:`start` after :meth:`stop` (or :meth:`restart`) serves the same sqlite file
    on the same port, so clients keep their ``TANGO_HOST`` across a database restart.
    """

    def __init__(self, workdir: Path, startup_timeout: float = 30.0,
                 python: str | None = None) -> None:
        super().__init__("Tango database", workdir, Path(workdir) / "databaseds.log",
                         startup_timeout)
        #: the Python that runs the server: ``python``, else ``$SARDANA_REDIS_TANGO_DB_PYTHON``,
        #: else this one
        self.python = python or os.environ.get(TANGO_DB_PYTHON_ENV) or sys.executable
        self.db_file = self.workdir / "tango.db"
        self._port: int | None = None
        self._bind_port = 0  #: a free port picked at the first start, then kept

    @property
    def port(self) -> int:
        """TCP port the database listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("Tango database not started")
        return self._port

    @property
    def tango_host(self) -> str:
        """Value for ``TANGO_HOST``: ``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> TangoDatabase:
        """Start the server and wait until it accepts requests."""
        if self.running:
            raise RuntimeError("Tango database already started")
        if not self._bind_port:
            # An explicit port, not 0: omniORB then sets SO_REUSEADDR, without which a
            # restart cannot bind the port while clients hold connections to the old server.
            self._bind_port = free_port()
        # Options must come before the instance name "2" or they are silently ignored.
        cmd = [self.python, "-m", "tango.databaseds.database", "--host", "127.0.0.1",
               "--port", str(self._bind_port), "--print-host-port", "2"]
        self._port = self.run_server(cmd, self._listening, "ready to accept requests",
                                     extra_env={"PYTANGO_DATABASE_NAME": str(self.db_file)})
        return self

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server, wait ``downtime`` seconds, start it again (same port and file)."""
        self.stop()
        time.sleep(downtime)
        self.start()

    def _listening(self) -> int | None:
        """The port, once the log says the server listens and accepts requests."""
        text = self.log_since_start()
        match = _PORT_RE.search(text)
        return int(match.group("port")) if match and _READY in text[match.end():] else None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (its whole process group). Safe to call twice."""
        was_running = self.running
        super().stop(timeout)
        if was_running and self.process is not None:
            log.info("Tango database stopped (exit code %s)", self.process.returncode)
        self._port = None
