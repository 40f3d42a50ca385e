"""The session's Door client: it restarts the session's Sardana when a macro is stuck.

Sardana's ``PoolElement.start`` waits for a motor's MOVING event without a timeout: when
that event never comes, the scan hangs where neither StopMacro nor AbortMacro reaches it
(seen a few times in whole ``make test`` runs, in a scan's first motion; not reproduced
alone). A beamline restarts the MacroServer; so does this client, loudly (a
:class:`SardanaRestarted` warning in the run's summary), and runs the macro again once, so
that one stuck Sardana costs one restart instead of every test after it.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from sardana_redis.local_stack.door import DoorClient, MacroResult, MacroRun, MacroStuck
from sardana_redis.local_stack.sardana_server import SardanaServer

log = logging.getLogger(__name__)


class SardanaRestarted(UserWarning):
    """A macro was stuck in Sardana: the server was restarted and the macro run again."""


class SessionDoor(DoorClient):
    """A :class:`DoorClient` of ``server``'s Door that restarts ``server`` when stuck."""

    def __init__(self, server: SardanaServer) -> None:
        super().__init__(server.door_name)
        self.server = server

    def restart_sardana(self, why: str) -> None:
        """Restart the Sardana server (its Tango database, environment and elements stay)."""
        warnings.warn(f"Sardana restarted: {why}", SardanaRestarted, stacklevel=3)
        log.warning("Restarting Sardana: %s", why)
        self.server.stop()
        self.server.start()
        self.abandon()
        self.setup_demo()

    def start(self, macro_name: str, *params: Any) -> MacroRun:
        previous = self._current
        if previous is not None and not previous.done():  # left stuck by an earlier test
            self.restart_sardana(f"{previous.macro} still running when {macro_name} starts")
        return super().start(macro_name, *params)

    def run(self, macro_name: str, *params: Any, timeout: float = 120.0,
            stop_timeout: float = 20.0) -> MacroResult:
        """:meth:`DoorClient.run`; a macro stuck in Sardana is run again once, in Sardana
        restarted."""
        try:
            return super().run(macro_name, *params, timeout=timeout, stop_timeout=stop_timeout)
        except MacroStuck as exc:
            self.restart_sardana(str(exc))
        return super().run(macro_name, *params, timeout=timeout, stop_timeout=stop_timeout)
