"""Running the writer services as real processes in tests, and waiting for their results."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis
from blissdata.redis_engine.store import DataStore

from sardana_redis.following.ledger import DoneRecord, WriterLedger
from sardana_redis.local_stack.tango_db import log_tail, terminate_process_group
from tests.recorder_helpers import SESSION


class ServiceProcess:
    """``sardana-redis <command> ...`` in its own process group, logging to a file."""

    def __init__(self, command: str, args: list[str], log_file: Path) -> None:
        self.command = command
        self.args = args
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sardana_redis", "--log-level", "INFO", self.command, *self.args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while "Waiting for scan" not in self.log():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
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


def scan_key(redis_url: str, number: int, session: str = SESSION, timeout: float = 30) -> str:
    store = DataStore(redis_url)
    deadline = time.monotonic() + timeout
    while True:
        _, keys = store.search_existing_scans(session=session, number=number)
        if keys:
            assert len(keys) == 1, keys
            return keys[0]
        assert time.monotonic() < deadline, f"no scan #{number}"
        time.sleep(0.1)


def wait_done(redis_url: str, key: str, writer: str, timeout: float = 60) -> DoneRecord:
    """The writer's done record of a scan, once it has one."""
    ledger = WriterLedger(redis.Redis.from_url(redis_url), writer)
    deadline = time.monotonic() + timeout
    while (record := ledger.done(key)) is None:
        assert time.monotonic() < deadline, f"{writer} did not finish {key}"
        time.sleep(0.1)
    return record
