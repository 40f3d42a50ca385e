"""The sardana-redis services (writers, memory tracker) as local processes, for tests and
the demo."""

from __future__ import annotations

import sys
from pathlib import Path

from sardana_redis.local_stack.process import LocalProcess, log_tail


class ServiceProcess(LocalProcess):
    """``sardana-redis <command> ...`` in its own process group, logging to a file."""

    def __init__(self, command: str, args: list[str], log_file: Path) -> None:
        super().__init__(f"sardana-redis {command}", log_file)
        self.command = command
        self.args = args

    def start(self, ready: str = "Waiting for scan", timeout: float = 30.0) -> ServiceProcess:
        """Start it and wait until its log says ``ready``."""
        self.launch([sys.executable, "-m", "sardana_redis", "--log-level", "INFO", self.command,
                     *self.args])
        try:
            self.wait_until(self.logged(ready), f"logging {ready!r}", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def log(self) -> str:
        return log_tail(self.log_file, 20000)
