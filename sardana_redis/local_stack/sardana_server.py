"""A real Sardana server (Pool + MacroServer + Door in one process) for local tests.

The server is registered in the given Tango database without interactive prompts,
started in its own process group with its logs in a work dir, and considered ready
when its Door answers with state ON.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import tango

from sardana_redis.local_stack.tango_db import TangoServerProcess
from sardana_redis.paths import MACRO_PATH, RECORDER_PATH

log = logging.getLogger(__name__)


SERVER_NAME = "Sardana"


def sardana_executable() -> str:
    """Path of the ``Sardana`` console script: next to ``sys.executable``, else on PATH."""
    candidate = Path(sys.executable).parent / SERVER_NAME
    if candidate.exists():
        return str(candidate)
    found = shutil.which(SERVER_NAME)
    if found is None:
        raise FileNotFoundError(f"No {SERVER_NAME} script next to {sys.executable} nor on PATH")
    return found


class SardanaServer(TangoServerProcess):
    """One ``Sardana <instance>`` process serving a Pool, a MacroServer and a Door.

    Device names (all full names, usable without ``TANGO_HOST``):
    :attr:`pool_name`, :attr:`macroserver_name`, :attr:`door_name`.
    ``pool_path`` is the Pool's ``PoolPath`` (folders of more controllers).
    ``extra_env`` is added to the server's environment (e.g. a Redis URL for a recorder).

    Restarting the same instance works (the registration is reused), but a client
    process that already used its Door keeps taurus objects whose Tango events are
    broken by the restart (taurus logs "Activating polling. Reason: API_EventTimeout"):
    a :class:`~sardana_redis.local_stack.door.DoorClient` macro started right after
    the restart was never seen to end; after waiting 40 s it worked. Prefer a new
    ``instance`` name for a second server in the same client process.
    """

    def __init__(
        self,
        tango_host: str,
        workdir: Path,
        instance: str = "sr",
        recorder_path: Sequence[str | Path] = (RECORDER_PATH,),
        macro_path: Sequence[str | Path] = (MACRO_PATH,),
        pool_path: Sequence[str | Path] = (),
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.tango_host = tango_host
        super().__init__(f"Sardana {instance}", workdir,
                         Path(workdir) / "sardana.console.log",  # its stdout and stderr
                         startup_timeout)
        self.instance = instance
        self.recorder_path = [str(p) for p in recorder_path]
        self.macro_path = [str(p) for p in macro_path]
        self.pool_path = [str(p) for p in pool_path]
        self.extra_env = dict(extra_env or {})
        self.sardana_log = self.workdir / "sardana.log"  #: Sardana's own log file
        self.environment_db = self.workdir / "macroserver_env" / "macroserver.properties"

    # Short device names (domain/family/member) and aliases.
    @property
    def _devices(self) -> dict[str, tuple[str, str]]:
        inst = self.instance
        return {
            "Pool": (f"pool/{inst}/1", f"Pool_{inst}_1"),
            "MacroServer": (f"macroserver/{inst}/1", f"MS_{inst}_1"),
            "Door": (f"door/{inst}/1", f"Door_{inst}_1"),
        }

    def _full_name(self, dev_class: str) -> str:
        return f"tango://{self.tango_host}/{self._devices[dev_class][0]}"

    @property
    def pool_name(self) -> str:
        """Full Tango name of the Pool device."""
        return self._full_name("Pool")

    @property
    def macroserver_name(self) -> str:
        """Full Tango name of the MacroServer device."""
        return self._full_name("MacroServer")

    @property
    def door_name(self) -> str:
        """Full Tango name of the Door device."""
        return self._full_name("Door")

    def _database(self) -> tango.Database:
        host, port = self.tango_host.rsplit(":", 1)
        return tango.Database(host, int(port))

    def register(self) -> None:
        """Register ``Sardana/<instance>`` and its devices, or update the MacroServer
        properties if the instance is already registered."""
        # Imported here: sardana.tango pulls in a lot and is only needed to register.
        from sardana.tango.core.util import exists_server_instance, register_server_with_devices

        db = self._database()
        ms_props = {
            "PoolNames": [self._devices["Pool"][0]],
            "RecorderPath": self.recorder_path,
            "MacroPath": self.macro_path,
            "EnvironmentDb": str(self.environment_db),
        }
        pool_props = {"PoolPath": self.pool_path} if self.pool_path else {}
        server = f"{SERVER_NAME}/{self.instance}"
        if exists_server_instance(db, SERVER_NAME, self.instance):
            ms_dev = self._devices["MacroServer"][0]
            if ms_dev not in [d.lower() for d in db.get_device_name(server, "MacroServer")]:
                raise RuntimeError(f"{server} is registered without MacroServer {ms_dev}")
            db.put_device_property(ms_dev, ms_props)
            if pool_props:
                db.put_device_property(self._devices["Pool"][0], pool_props)
            log.info("%s already registered; MacroServer properties updated", server)
            return
        props: dict[str, dict] = {"Pool": pool_props, "MacroServer": ms_props, "Door": {}}
        register_server_with_devices(
            db,
            SERVER_NAME,
            self.instance,
            [(cls, name, alias, props[cls]) for cls, (name, alias) in self._devices.items()],
        )
        log.info("Registered %s in %s", server, self.tango_host)

    def start(self) -> SardanaServer:
        """Register if needed, start the server and wait until the Door is ON."""
        if self.running:
            raise RuntimeError("Sardana server already started")
        self.environment_db.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sardana_executable(),
            self.instance,
            # The file log defaults to DEBUG, which slows scans by about 30 %.
            "--log-level=warning",
            "--log-file-level=warning",
            f"--log-file-name={self.sardana_log}",
            "-ORBendPoint",
            "giop:tcp:127.0.0.1:",
        ]
        self.register()
        # An unregistered instance makes Sardana prompt: its stdin is /dev/null.
        self.run_server(cmd, self._door_on, f"its Door {self.door_name} ON",
                        tango_host=self.tango_host, extra_env=self.extra_env, poll=0.2)
        return self

    def _door_on(self) -> bool:
        try:
            door = tango.DeviceProxy(self.door_name)
            door.set_timeout_millis(1000)
            return bool(door.state() == tango.DevState.ON)
        except tango.DevFailed:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (its whole process group). Safe to call twice."""
        t0, was_running = time.monotonic(), self.running
        super().stop(timeout)
        if was_running and self.process is not None:
            log.info("Sardana %s stopped (exit code %s) in %.1f s", self.instance,
                     self.process.returncode, time.monotonic() - t0)
