"""The life of one local server process, shared by every part of the local stack.

Each server (Redis Stack, a sentinel, the Tango database, Sardana, a sardana-redis
service) is a :class:`LocalProcess`: started in a session of its own (so that stopping it
stops its whole process group, children included), its output appended to a log file, ready
once a condition holds (a log line, a Tango state), stopped with SIGTERM then SIGKILL.
Subclasses say how to start and when the process is ready; this module does the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, nb_chars: int = 3000) -> str:
    """The last ``nb_chars`` characters of a log file ('' if it does not exist)."""
    try:
        return Path(path).read_text(errors="replace")[-nb_chars:]
    except FileNotFoundError:
        return ""


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


class LocalProcess:
    """One server process of the local stack, logging to ``log_file`` (see the module).

    :attr:`process` is the running (or last) process; :meth:`launch` starts it,
    :meth:`wait_until` waits for it to be ready, :meth:`stop`, :meth:`kill` and
    :meth:`send_signal` act on its whole process group. A subclass implements
    :meth:`start` (launch, then wait until ready) and returns ``self`` from it.
    """

    def __init__(self, name: str, log_file: Path, startup_timeout: float = 30.0) -> None:
        self.name = name  #: for log lines and errors, e.g. "redis-server"
        self.log_file = Path(log_file)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._log_offset = 0

    # --- starting -----------------------------------------------------------------

    def start(self) -> LocalProcess:
        raise NotImplementedError

    def launch(self, cmd: Sequence[str], *, cwd: Path | None = None,
               env: Mapping[str, str] | None = None, output: Path | None = None) -> None:
        """Start ``cmd`` in its own session; its stdout and stderr are appended to ``output``
        (default: :attr:`log_file`; the server may write :attr:`log_file` itself, then pass
        ``os.devnull``). What the log held before is not read by :meth:`log_since_start`."""
        output = Path(output or self.log_file)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(output, "ab") as out:
            self.process = subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True)

    def log_since_start(self) -> str:
        """What the process logged since its last :meth:`launch`."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_until(self, ready: Callable[[], Any], what: str, timeout: float | None = None,
                   poll: float = 0.05) -> Any:
        """``ready()``'s first true value; RuntimeError if the process exits first,
        TimeoutError after ``timeout`` (default: :attr:`startup_timeout`), both with the end
        of its log."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            value = ready()
            if value:
                return value
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process is not None else None
                raise RuntimeError(f"{self.name} exited with {code} before {what}; "
                                   f"log {self.log_file}:\n{log_tail(self.log_file)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not {what} after {timeout:g} s; "
                                   f"log {self.log_file}:\n{log_tail(self.log_file)}")
            time.sleep(poll)

    def logged(self, line: str) -> Callable[[], bool]:
        """A :meth:`wait_until` condition: ``line`` logged since the last start."""
        return lambda: line in self.log_since_start()

    # --- the running process ----------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id (leader of its own process group), if started."""
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (servers shut down cleanly), SIGKILL if it hangs.
        Safe to call twice."""
        if self.process is not None:
            terminate_process_group(self.process, self.name, timeout)

    def kill(self) -> None:
        """SIGKILL the process group (a crash)."""
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def send_signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process group (SIGSTOP/SIGCONT pause/resume it)."""
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, signum)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
