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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

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


def terminate_process_group(proc: subprocess.Popen, name: str, timeout: float = 10.0) -> None:
    """End ``proc`` and its whole process group: SIGTERM, then SIGKILL after ``timeout``.

    ``proc`` must have been started with ``start_new_session=True`` (it leads its group).
    """
    if proc.poll() is not None:
        log.debug("%s (pid %d) already exited with %s", name, proc.pid, proc.returncode)
        return
    pgid = proc.pid
    log.debug("Sending SIGTERM to %s (process group %d)", name, pgid)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not exit %.1f s after SIGTERM; sending SIGKILL", name, timeout)
    # Kill leftovers of the group too (children that outlived the leader).
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def log_tail(path: Path, nb_chars: int = 3000) -> str:
    """The last ``nb_chars`` characters of a log file ('' if it does not exist)."""
    try:
        return path.read_text(errors="replace")[-nb_chars:]
    except FileNotFoundError:
        return ""


class TangoDatabase:
    """PyTango's sqlite Tango database server, on 127.0.0.1 and a free port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with TangoDatabase(workdir) as db:
            os.environ["TANGO_HOST"] = db.tango_host

    :meth:`start` after :meth:`stop` (or :meth:`restart`) serves the same sqlite file
    on the same port, so clients keep their ``TANGO_HOST`` across a database restart.
    """

    def __init__(self, workdir: Path, startup_timeout: float = 30.0,
                 python: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout
        #: the Python that runs the server: ``python``, else ``$SARDANA_REDIS_TANGO_DB_PYTHON``,
        #: else this one
        self.python = python or os.environ.get(TANGO_DB_PYTHON_ENV) or sys.executable
        self.db_file = self.workdir / "tango.db"
        self.log_file = self.workdir / "databaseds.log"
        self._proc: subprocess.Popen | None = None
        self._port: int | None = None
        self._bind_port = 0  #: a free port picked at the first start, then kept
        self._log_offset = 0  #: size of the log file when the server was last started
        self._unix_socket_dir: Path | None = None

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

    @property
    def pid(self) -> int | None:
        """Process id of the server (leader of its own process group), if running."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the server and wait until it accepts requests."""
        if self._proc is not None:
            raise RuntimeError("Tango database already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._bind_port:
            # An explicit port, not 0: omniORB then sets SO_REUSEADDR, without which a
            # restart cannot bind the port while clients hold connections to the old server.
            from sardana_redis.local_stack.redis_server import free_port  # (circular import)

            self._bind_port = free_port()
        # Options must come before the instance name "2" or they are silently ignored.
        cmd = [
            self.python,
            "-m",
            "tango.databaseds.database",
            "--host",
            "127.0.0.1",
            "--port",
            str(self._bind_port),
            "--print-host-port",
            "2",
        ]
        t0 = time.monotonic()
        self._unix_socket_dir = make_unix_socket_dir()
        try:
            env = local_server_env(self.workdir, self._unix_socket_dir)
            env["PYTANGO_DATABASE_NAME"] = str(self.db_file)
            # appended to: the log of a restarted database keeps its earlier runs
            self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            with open(self.log_file, "ab") as out:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            self._port = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info(
            "Tango database ready at %s (pid %d) in %.1f s",
            self.tango_host,
            self._proc.pid,
            time.monotonic() - t0,
        )

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server, wait ``downtime`` seconds, start it again (same port and file)."""
        self.stop()
        time.sleep(downtime)
        self.start()

    def _log_since_start(self) -> str:
        """What the server logged since its last :meth:`start`."""
        with open(self.log_file, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def _wait_ready(self) -> int:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            text = self._log_since_start()
            match = _PORT_RE.search(text)
            if match and _READY in text[match.end() :]:
                return int(match.group("port"))
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Tango database exited with {self._proc.returncode}; "
                    f"log {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Tango database not ready after {self.startup_timeout} s; "
                    f"log {self.log_file}:\n{log_tail(self.log_file)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (its whole process group). Safe to call twice."""
        if self._proc is not None:
            terminate_process_group(self._proc, "Tango database", timeout=timeout)
            log.info("Tango database stopped (exit code %s)", self._proc.returncode)
            self._proc = None
            self._port = None
        if self._unix_socket_dir is not None:
            remove_unix_socket_dir(self._unix_socket_dir)
            self._unix_socket_dir = None

    def __enter__(self) -> TangoDatabase:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
