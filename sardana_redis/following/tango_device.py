"""A Tango device shell for writer services: :class:`WriterDevice`.

One device runs one :class:`~sardana_redis.following.follower.ScanFollower`,
configured from device properties, started by ``init_device`` and by the
``Start`` command, stopped by ``Stop``. Subclasses only say which file writer
they run (:attr:`WriterDevice.HANDLER`) and their default writer name
(:attr:`WriterDevice.DEFAULT_WRITER_NAME`); :func:`run_server` runs one as
``<ServerName> <instance>``.

State and Status are computed when read:

========  ==============================================================
INIT      started, Redis has not answered yet
ON        the follower runs and reaches Redis (Status: what it follows)
ALARM     the follower runs but Redis is unreachable; it retries by itself
          (Status: the Redis error)
FAULT     invalid configuration (fix the properties, then ``Init``), or a
          follower thread died (see the server log, then ``Start``)
OFF       stopped by the ``Stop`` command
========  ==============================================================

ALARM, not FAULT, for Redis being away: the service recovers on its own
once Redis is back, nobody has to act on the device.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import ClassVar

import tango
from tango import DevState
from tango.server import Device, attribute, command, device_property, run

from sardana_redis.following.file_writer import FileScanWriter
from sardana_redis.following.follower import FollowerStatus, ScanFollower, ScanHandler
from sardana_redis.redis_url import DEFAULT_REDIS_URL, normalize_redis_url, redact_redis_url

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def configure_logging(level: str) -> None:
    """Log this package's records to stderr at ``level`` (one level per process).

    Raises ValueError for a name that is not a :mod:`logging` level.
    """
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"log_level {level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    if not logging.getLogger().handlers:
        logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger("sardana_redis").setLevel(number)


class WriterDevice(Device):
    """Base Tango device of the writer services (see the module docstring)."""

    #: Writer name used when the ``writer_name`` property is empty (subclasses set it).
    DEFAULT_WRITER_NAME: ClassVar[str] = ""
    #: The file writer this device runs (subclasses set it).
    HANDLER: ClassVar[type[FileScanWriter]]

    redis_url = device_property(dtype=str, default_value=DEFAULT_REDIS_URL,
                                doc="Redis URL of the blissdata scans")
    log_level = device_property(dtype=str, default_value="INFO",
                                doc="DEBUG, INFO, WARNING or ERROR (for the whole server process)")
    next_scan_timeout = device_property(dtype=float, default_value=2.0,
                                        doc="seconds per wait for a new scan "
                                            "(Stop can take that long)")
    sessions = device_property(dtype=(str,), default_value=[],
                               doc="only write scans of these sessions (empty: all)")
    beamlines = device_property(dtype=(str,), default_value=[],
                                doc="only write scans of these beamlines (empty: all)")
    root_dirs = device_property(dtype=(str,), default_value=[],
                                doc="absolute folders the writer may write under (required)")
    default_file = device_property(dtype=str, default_value="",
                                   doc="file pattern for scans that request no file, e.g. "
                                       "/data/{session}/{proposal}/scans.dat (empty: none)")
    writer_name = device_property(dtype=str, default_value="",
                                  doc="writer name: instances with the same name share the work "
                                      "and the progress (empty: the class' default)")

    def make_handler(self) -> ScanHandler:
        """The file writer confined to ``root_dirs``, with ``default_file`` for scans that
        request no file (raises ValueError for a bad configuration)."""
        return self.HANDLER([Path(d) for d in self.root_dirs], self.default_file or None)

    # --- life cycle ----------------------------------------------------------

    def init_device(self) -> None:
        """Read the properties, check them and start following."""
        super().init_device()
        self._follower: ScanFollower | None = None
        self._should_run = False
        self._config_error = ""
        try:
            configure_logging(self.log_level)
            self._check_properties()
            self._handler = self.make_handler()
        except ValueError as exc:
            self._config_error = str(exc)
            log.error("%s: invalid configuration: %s", self.get_name(), exc)
            return
        self._start()

    def delete_device(self) -> None:
        """Stop following (server shutdown or ``Init``)."""
        self._stop()

    def _check_properties(self) -> None:
        normalize_redis_url(self.redis_url)  # RedisURLError is a ValueError
        if not self.root_dirs:
            raise ValueError("the root_dirs property is not set: a writer needs at least "
                             "one folder it may write under")
        relative = [d for d in self.root_dirs if not os.path.isabs(d)]
        if relative:
            raise ValueError(f"root_dirs must be absolute paths, not {', '.join(relative)}")
        if not self.next_scan_timeout > 0:
            raise ValueError(f"next_scan_timeout must be > 0, not {self.next_scan_timeout}")
        if not (self.writer_name or self.DEFAULT_WRITER_NAME):
            raise ValueError("the writer_name property is not set")

    def _start(self) -> None:
        """Follow with a new follower (a stopped ScanFollower cannot be started again)."""
        self._stop()
        self._follower = ScanFollower(
            self.redis_url, self.writer_name or self.DEFAULT_WRITER_NAME, self._handler,
            sessions=self.sessions, beamlines=self.beamlines,
            next_scan_timeout=self.next_scan_timeout)
        self._follower.start()
        self._should_run = True
        log.info("%s: following %s as writer %r", self.get_name(),
                 redact_redis_url(self._follower.url), self._follower.name)

    def _stop(self) -> None:
        self._should_run = False
        if self._follower is not None and self._follower.status.running:
            self._follower.stop()

    # --- state and status ----------------------------------------------------

    def _health(self) -> tuple[DevState, str]:
        if self._config_error:
            return DevState.FAULT, (f"Invalid configuration: {self._config_error}. "
                                    "Fix the device properties, then run Init.")
        follower = self._follower
        if follower is None or not self._should_run:
            return DevState.OFF, "Stopped by the Stop command: run Start to follow scans again."
        if not follower.is_alive():
            return DevState.FAULT, ("A scan follower thread died (see the server log): "
                                    "run Start to follow scans again.")
        status = follower.status
        if status.connecting:
            return DevState.INIT, f"Starting: {status.message}"
        if not status.healthy:
            return DevState.ALARM, f"Not following scans: {status.message}"
        sessions = ", ".join(sorted(follower.sessions)) or "all"
        return DevState.ON, (f"Writer {follower.name!r} {status.message} (sessions: {sessions}); "
                             f"{status.scans_written} scans written, {status.scans_failed} failed, "
                             f"{len(status.active)} being written.")

    def dev_state(self) -> DevState:
        """The state, computed now (see the module docstring)."""
        state, _ = self._health()
        self.set_state(state)
        return state

    def dev_status(self) -> str:
        """The status, computed now: why the device is in its state."""
        _, status = self._health()
        self.set_status(status)
        return status

    # --- commands --------------------------------------------------------------

    @command
    def Start(self) -> None:
        """Follow scans again (after Stop, or after a follower thread died)."""
        if self._config_error:
            tango.Except.throw_exception(
                "WriterDevice_InvalidConfiguration",
                f"Cannot start: invalid configuration: {self._config_error}", "Start")
        if self._should_run and self._follower is not None and self._follower.is_alive():
            return
        self._start()

    @command
    def Stop(self) -> None:
        """Stop following; scans being written are left for a resume."""
        self._stop()
        log.info("%s: stopped by the Stop command", self.get_name())

    # --- attributes -------------------------------------------------------------

    def _status(self) -> FollowerStatus:
        return self._follower.status if self._follower is not None else FollowerStatus()

    @attribute(dtype=str, doc="key of the last scan written (since the last Start)")
    def LastScan(self) -> str:
        return self._status().last_scan

    @attribute(dtype=(str,), max_dim_x=1024, doc="files of the last scan written")
    def LastFiles(self) -> list[str]:
        return list(self._status().last_files)

    @attribute(dtype=int, doc="scans written since the last Start")
    def ScansWritten(self) -> int:
        return self._status().scans_written

    @attribute(dtype=int, doc="scans failed since the last Start")
    def ScansFailed(self) -> int:
        return self._status().scans_failed

    @attribute(dtype=int, doc="points published but not yet written, over the scans being written")
    def LagPoints(self) -> int:
        return self._status().lag_points

    @attribute(dtype=int, doc="scans being written now")
    def ActiveScans(self) -> int:
        return len(self._status().active)


def run_server(device_class: type[Device], args: list[str] | None = None) -> None:
    """Run ``device_class`` as the Tango server of the same name.

    ``args`` are the server arguments (default: ``sys.argv[1:]``), the instance
    first. The server is named after the class however it is started (Tango
    would name it after ``argv[0]``, which ``python -m`` sets to a file path).
    """
    argv = sys.argv[1:] if args is None else args
    run((device_class,), args=[device_class.__name__, *argv])
