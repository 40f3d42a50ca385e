"""A Tango device shell for writer services: :class:`WriterDevice`.

A :class:`~sardana_redis.tango_service.ServiceDevice` whose service is one
:class:`~sardana_redis.following.follower.ScanFollower`, configured from device
properties, started by ``init_device`` and by the ``Start`` command, stopped by
``Stop`` (scans being written are left for a resume). Subclasses only say which
file writer they run (:attr:`WriterDevice.HANDLER`), whose format names the writer
by default (``spec-writer``, as the command ``sardana-redis spec-writer``);
:meth:`~sardana_redis.tango_service.ServiceDevice.main` runs one as
``<ServerName> <instance>``.

State and Status are computed when read:

========  ==============================================================
INIT      started, Redis has not answered yet
ON        the follower runs and reaches Redis (Status: what it follows)
ALARM     the follower runs but Redis is unreachable, or a scan cannot be
          written now (disk full, or its file held open by another program:
          ``waiting for FILE: held open by another program``); it retries by
          itself (Status: the error)
FAULT     invalid configuration (fix the properties, then ``Init``), or a
          follower thread died (see the server log, then ``Start``)
OFF       stopped by the ``Stop`` command
========  ==============================================================

ALARM, not FAULT, for Redis being away, a full disk or a file held open by a reader:
the service recovers on its own once Redis is back, space is freed or the reader
closes the file; nobody has to act on the device.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from tango import DevState
from tango.server import device_property

from sardana_redis import settings
from sardana_redis.following.file_writer import FileScanWriter
from sardana_redis.following.follower import FollowerStatus, ScanFollower
from sardana_redis.following.settings import WriterSettings
from sardana_redis.redis_url import DEFAULT_REDIS_URL, normalize_redis_url, redact_redis_url
from sardana_redis.tango_service import ServiceDevice, shown

log = logging.getLogger(__name__)


class WriterDevice(ServiceDevice):
    """Base Tango device of the writer services (see the module docstring)."""

    ACTIVITY = "follow scans"
    #: The file writer this device runs (subclasses set it).
    HANDLER: ClassVar[type[FileScanWriter]]

    @classmethod
    def default_writer_name(cls) -> str:
        """The writer name when the ``writer_name`` property is empty: the command's."""
        return f"{cls.HANDLER.FORMAT}-writer"

    redis_url = device_property(dtype=str, default_value=DEFAULT_REDIS_URL,
                                doc="Redis URL of the blissdata scans")
    # the writer's settings (following/settings.py), the same as the command line's
    locals().update(settings.tango_properties(device_property, WriterSettings))

    def writer_settings(self) -> WriterSettings:
        """The writer settings from the properties (ValueError naming the property)."""
        try:
            return settings.from_properties(
                {name: getattr(self, name) for name in settings.declared(WriterSettings)},
                WriterSettings)
        except settings.SettingError as exc:
            raise ValueError(exc.for_tango()) from None

    # --- life cycle ----------------------------------------------------------

    def _configure(self) -> None:
        """Check the properties and make the file writer (ValueError when invalid)."""
        normalize_redis_url(self.redis_url)  # RedisURLError is a ValueError
        self._settings = self.writer_settings()
        self._handler = self._settings.handler(self.HANDLER)

    def _make_service(self) -> ScanFollower:
        """A new follower (a stopped ScanFollower cannot be started again)."""
        config = self._settings
        return ScanFollower(
            self.redis_url, config.writer_name or self.default_writer_name(), self._handler,
            sessions=config.sessions, beamlines=config.beamlines,
            next_scan_timeout=config.next_scan_timeout, lease=config.lease,
            max_scans=config.max_scans)

    def _started(self, follower: ScanFollower) -> str:
        return f"following {redact_redis_url(follower.url)} as writer {follower.name!r}"

    def _died(self, follower: ScanFollower) -> str:
        return ("A scan follower thread died (see the server log): "
                f"run Start to {self.ACTIVITY} again.")

    # --- state and status ----------------------------------------------------

    def _running_health(self, follower: ScanFollower) -> tuple[DevState, str]:
        status = follower.status
        if status.connecting:
            return DevState.INIT, f"Starting: {status.message}"
        if not status.healthy:
            return DevState.ALARM, f"Not following scans: {status.message}"
        blocked = status.blocked
        if blocked:
            return DevState.ALARM, (f"{len(blocked)} scan(s) cannot be written now: " +
                                    "; ".join(f"{k}: {m}" for k, m in blocked.items()))
        sessions = ", ".join(sorted(follower.sessions)) or "all"
        return DevState.ON, (f"Writer {follower.name!r} {status.message} (sessions: {sessions}); "
                             f"{status.scans_written} scans written, {status.scans_failed} failed, "
                             f"{len(status.active)} being written.")

    # --- attributes -------------------------------------------------------------

    def _snapshot(self) -> FollowerStatus:
        return self._service.status if self._service is not None else FollowerStatus()

    LastScan = shown("last_scan", dtype=str,
                     doc="key of the last scan written (since the last Start)")
    LastFiles = shown(lambda s: list(s.last_files), dtype=(str,), max_dim_x=1024,
                      doc="files of the last scan written")
    ScansWritten = shown("scans_written", dtype=int, doc="scans written since the last Start")
    ScansFailed = shown("scans_failed", dtype=int, doc="scans failed since the last Start")
    LagPoints = shown("lag_points", dtype=int,
                      doc="points published but not yet written, over the scans being written")
    ActiveScans = shown(lambda s: len(s.active), dtype=int, doc="scans being written now")

