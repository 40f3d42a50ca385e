"""RedisBlissRecorder: every Sardana scan published live into Redis as a blissdata scan.

Put this folder in the MacroServer's ``RecorderPath`` and activate it with
``senv DataRecorder "['RedisBlissRecorder']"`` (publish only) or route
``ScanFile`` entries to it with ``ScanRecorder`` (publish and ask the writer
services for those files). The Redis URL is the ``RedisURL`` environment
variable (default ``redis://localhost:6379``).

Sardana creates one recorder per routed entry; the first one to start a scan
publishes it, the others stand by, so one Sardana scan is one blissdata scan.
A scan never fails because of Redis: every batch is kept in a local spool
(the ``RedisSpoolDir`` environment variable, or ``$SARDANA_REDIS_SPOOL``) until
Redis has it; the user gets one warning when Redis is lost and one line when the
publisher has caught up. Scans a MacroServer that died left in its spool are
published (and closed) by the next recorder start.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from sardana.macroserver.scan.recorder import DataRecorder

from sardana_redis.custom_data import CustomData, Phase, describe_custom_data
from sardana_redis.publishing.close_hold import CUSTOM_DATA_WAIT, CloseHold, HoldsByMacro
from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.publishing.replay import replay_in_background
from sardana_redis.publishing.sardana_adapter import (
    URL_VARIABLE,
    describe_end,
    describe_scan,
    macro_running,
    top_macro,
)
from sardana_redis.publishing.spool import SPOOL_VARIABLE, spool_for
from sardana_redis.redis_url import DEFAULT_REDIS_URL

#: Seconds the end of a scan waits for the scan to be closed in Redis.
CLOSE_WAIT = 10.0

_publishing: dict[int, RedisBlissRecorder] = {}  # id(recordlist) -> the recorder publishing it
_publishing_lock = threading.Lock()
_holds = HoldsByMacro()  # scans kept open for custom data, by top-level macro


class RedisBlissRecorder(DataRecorder):
    """Publishes the scan's records into Redis (blissdata streams)."""

    def __init__(self, filename: str | None = None, macro: Any = None, **pars: Any) -> None:
        DataRecorder.__init__(self, **pars)
        self.filename = filename
        self.macro = macro
        self._publisher: ScanPublisher | None = None
        self._ended: ScanPublisher | None = None  #: the scan ended: custom data may still come
        self._custom_before: list[CustomData] = []
        self._warned = False

    def getFormat(self) -> str:
        return "blissdata"

    def _get_env(self, name: str, default: Any = None) -> Any:
        try:
            return self.macro.getEnv(name)
        except Exception:
            return default

    def _warn_once(self, message: str) -> None:
        if self._warned:
            return
        self._warned = True
        self._tell("warning", f"RedisBlissRecorder: {message}")

    def _tell(self, level: str, text: str) -> None:
        try:
            getattr(self.macro, level)(text)
        except Exception:
            getattr(self, level)(text)

    def _relay(self, publisher: ScanPublisher) -> None:
        """What the publisher has to tell the user (Redis lost, caught up, points lost)."""
        for level, message in publisher.notices():
            self._tell(level, f"RedisBlissRecorder: {message}")

    def _startRecordList(self, recordlist: Any) -> None:
        with _publishing_lock:
            if id(recordlist) in _publishing:
                return  # another RedisBlissRecorder publishes this scan
            _publishing[id(recordlist)] = self
        _holds.release(id(top_macro(self.macro)))  # scans before this one may close
        try:
            description = dataclasses.replace(
                describe_scan(recordlist.getEnviron(), self.macro, self._get_env),
                custom_data=tuple(self._custom_before))
            url = self._get_env(URL_VARIABLE, DEFAULT_REDIS_URL)
            spool = spool_for(self._get_env(SPOOL_VARIABLE))
            replay_in_background(spool)  # what a MacroServer that died left behind
            self._publisher = ScanPublisher(url, description, spool=spool)
            self._publisher.start()
        except Exception as exc:
            self._publisher = None
            self._warn_once(f"cannot publish this scan: {exc}")

    def _writeRecord(self, record: Any) -> None:
        publisher = self._publisher
        if publisher is None:
            return
        publisher.push(record.data)
        if publisher.has_notices:  # cheap check in the scan thread; rare
            self._relay(publisher)

    def _endRecordList(self, recordlist: Any) -> None:
        with _publishing_lock:
            if _publishing.get(id(recordlist)) is self:
                del _publishing[id(recordlist)]
        publisher, self._publisher = self._publisher, None
        if publisher is None:
            return
        root = top_macro(self.macro)
        hold = CloseHold(lambda: macro_running(root)) if root is not None else None
        if hold is not None:
            _holds.add(id(root), hold)
        self._ended = publisher
        try:
            closed = publisher.finish(describe_end(recordlist.getEnviron()), wait=CLOSE_WAIT,
                                      hold=hold)
        except Exception as exc:
            self._warn_once(f"cannot end the scan in Redis: {exc}")
            return
        self._relay(publisher)
        if publisher.points_lost:
            self._tell("warning", f"RedisBlissRecorder: {publisher.points_lost} points of this "
                                  f"scan could not be kept and are lost ({publisher.problem})")
        if not closed:
            self._tell("warning", (
                f"RedisBlissRecorder: Redis unreachable: {publisher.points_held} points of "
                f"this scan held in {publisher.spool.folder}; they are published as soon as "
                f"Redis is back"))
        if publisher.placeholders:
            self.debug("placeholders published for missing values: %s", publisher.placeholders)

    def _addCustomData(self, value: Any, name: str, **kwargs: Any) -> None:
        """Sardana's custom data: published with the scan (see :mod:`sardana_redis.custom_data`)."""
        publisher = self._publisher or self._ended
        if publisher is None:
            self._custom_before.append(describe_custom_data(value, name, Phase.BEFORE, **kwargs))
            return
        phase = Phase.DURING if self._publisher is not None else Phase.AFTER
        if not publisher.add_custom_data(describe_custom_data(value, name, phase, **kwargs)):
            self._tell("warning", (
                f"RedisBlissRecorder: custom data {name!r} is not published: its scan was "
                f"already closed in Redis (a scan waits for custom data until its macro ends, "
                f"the next scan starts, or {CUSTOM_DATA_WAIT:g} s after its end)"))
