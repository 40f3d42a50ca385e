"""The sardana-redis services (writers, memory tracker) as local processes, for tests and
the demo."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sardana_redis.local_stack.tango_db import log_tail, terminate_process_group


class ServiceProcess:
    """``sardana-redis <command> ...`` in its own process group, logging to a file."""

    def __init__(self, command: str, args: list[str], log_file: Path) -> None:
        self.command = command
        self.args = args
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    def start(self, ready: str = "Waiting for scan", timeout: float = 30.0) -> ServiceProcess:
        """Start it and wait until its log says ``ready``."""
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sardana_redis", "--log-level", "INFO", self.command,
                 *self.args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while ready not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sardana-redis {self.command} did not start, see "
                                   f"{self.log_file}:\n{log_tail(self.log_file, 3000)}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return log_tail(self.log_file, 20000)

    def stop(self) -> None:
        if self.proc is not None:
            terminate_process_group(self.proc, self.command)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
