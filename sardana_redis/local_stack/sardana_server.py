"""A real Sardana server (Pool + MacroServer + Door in one process) for local tests.

The server is registered in the given Tango database without interactive prompts,
started in its own process group with its logs in a work dir, and considered ready
when its Door answers with state ON.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import tango

from sardana_redis.local_stack.tango_db import (
    local_server_env,
    log_tail,
    make_unix_socket_dir,
    remove_unix_socket_dir,
    terminate_process_group,
)
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


class SardanaServer:
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
        self.workdir = Path(workdir)
        self.instance = instance
        self.recorder_path = [str(p) for p in recorder_path]
        self.macro_path = [str(p) for p in macro_path]
        self.pool_path = [str(p) for p in pool_path]
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.log_file = self.workdir / "sardana.log"
        self.console_file = self.workdir / "sardana.console.log"
        self.environment_db = self.workdir / "macroserver_env" / "macroserver.properties"
        self._proc: subprocess.Popen | None = None
        self._unix_socket_dir: Path | None = None

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

    @property
    def pid(self) -> int | None:
        """Process id of the server (leader of its own process group), if running."""
        return self._proc.pid if self._proc is not None else None

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

    def start(self) -> None:
        """Register if needed, start the server and wait until the Door is ON."""
        if self._proc is not None:
            raise RuntimeError("Sardana server already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.environment_db.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sardana_executable(),
            self.instance,
            # The file log defaults to DEBUG, which slows scans by about 30 %.
            "--log-level=warning",
            "--log-file-level=warning",
            f"--log-file-name={self.log_file}",
            "-ORBendPoint",
            "giop:tcp:127.0.0.1:",
        ]
        t0 = time.monotonic()
        self.register()
        self._unix_socket_dir = make_unix_socket_dir()
        try:
            env = local_server_env(self.workdir, self._unix_socket_dir, self.tango_host)
            env.update(self.extra_env)
            with open(self.console_file, "wb") as out:
                self._proc = subprocess.Popen(
                    cmd,
                    # An unregistered instance makes Sardana prompt: never wait on stdin.
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info(
            "Sardana %s ready (pid %d) in %.1f s",
            self.instance,
            self._proc.pid,
            time.monotonic() - t0,
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Sardana exited with {self._proc.returncode}; "
                    f"console {self.console_file}:\n{log_tail(self.console_file)}"
                )
            try:
                door = tango.DeviceProxy(self.door_name)
                door.set_timeout_millis(1000)
                if door.state() == tango.DevState.ON:
                    return
            except tango.DevFailed as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Door {self.door_name} not ON after {self.startup_timeout} s "
                    f"(last error: {last_error}); console:\n{log_tail(self.console_file)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (its whole process group). Safe to call twice."""
        if self._proc is not None:
            t0 = time.monotonic()
            terminate_process_group(self._proc, f"Sardana {self.instance}", timeout=timeout)
            log.info(
                "Sardana %s stopped (exit code %s) in %.1f s",
                self.instance,
                self._proc.returncode,
                time.monotonic() - t0,
            )
            self._proc = None
        if self._unix_socket_dir is not None:
            remove_unix_socket_dir(self._unix_socket_dir)
            self._unix_socket_dir = None

    def __enter__(self) -> SardanaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
