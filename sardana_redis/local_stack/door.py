"""Drive a Sardana Door from Python: run macros, capture their logs, set the environment.

**Set** ``os.environ["TANGO_HOST"]`` **before making a** ``DoorClient`` and keep it
unchanged while it is used. Full device names (``tango://host:port/door/sr/1``) work
without it, but taurus resolves short names and aliases (``taurus.Device("mot01")``,
which Sardana's client code does for pool elements) through its default authority,
taken from ``TANGO_HOST``; without it they fail with "Invalid Tango authority name
tango:None". ``DoorClient`` refuses to start without it. The pytest fixture
``tango_db`` (``tests/fixtures_sardana.py``) sets it; by hand::

    os.environ["TANGO_HOST"] = tango_db.tango_host
    door = DoorClient(sardana_server.door_name)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import tango

log = logging.getLogger(__name__)

#: Final states of a macro, as published in the Door's MacroStatus attribute.
FINAL_STATUSES = frozenset({"finish", "stop", "abort", "exception"})
_BUSY_STATES = (tango.DevState.RUNNING, tango.DevState.STANDBY)  # running or paused
#: Seconds after its start from which a macro's end is also checked by reading the Door.
EVENTLESS_AFTER = 2.0
_LOG_STREAMS = ("Output", "Info", "Warning", "Error", "Debug", "Result")
_DEMO_MOTORS = ("mot01", "mot02", "mot03", "mot04")
_DEMO_ELEMENTS = (*_DEMO_MOTORS, "ct01", "ct02", "ct03", "ct04", "mntgrp01")


@dataclass
class MacroResult:
    """What one macro run left behind: its log lines and how it ended."""

    macro: str
    #: How the top macro ended: finish, stop, abort or exception (from the Door's
    #: MacroStatus; "exception" too when the macro failed before it started, e.g. on
    #: invalid parameters, which publishes no status but leaves the Door in ALARM).
    status: str
    #: Door state once the macro was over: ON, or ALARM after an exception.
    door_state: str
    output: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)
    #: Raw lines of the Door's Result attribute (the macro's return value, if any).
    result: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The macro finished normally."""
        return self.status == "finish"

    @property
    def raised(self) -> bool:
        """The macro ended with an exception."""
        return self.status == "exception"

    @property
    def stopped(self) -> bool:
        """The macro was stopped or aborted by the user."""
        return self.status in ("stop", "abort")


class MacroStuck(TimeoutError):
    """A macro neither ended nor stopped: the Door stays busy (Sardana needs a restart)."""


def _wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, period: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(period)


class MacroRun:
    """A macro started by :meth:`DoorClient.start`; :meth:`wait` for its :class:`MacroResult`."""

    def __init__(self, client: DoorClient, macro: str, macro_id: str) -> None:
        self._client = client
        self.macro = macro
        self.macro_id = macro_id
        self._result: MacroResult | None = None
        self._started = time.monotonic()
        #: Direct reads of the Door's state (the fallback when its events do not come).
        self._last_read = 0.0
        self._idle_reads = 0

    @property
    def status(self) -> str | None:
        """Latest MacroStatus state of this macro (None before the first event):
        start, step, pause, resume, finish, stop, abort or exception."""
        return self._client._status_of(self.macro_id)

    def wait_status(self, status: str, timeout: float = 30.0) -> MacroRun:
        """Wait until the macro reports ``status`` (e.g. ``step``: a scan is recording)."""
        _wait_until(lambda: self.status == status, timeout, f"status {status} of {self.macro}")
        return self

    def done(self) -> bool:
        """The Door went RUNNING for this macro and then left RUNNING (from its events).

        Events can be missed: Tango re-subscribes after a missed heartbeat (a loaded
        machine) and taurus polls meanwhile, which can miss a short macro's RUNNING. So
        once the macro has had :data:`EVENTLESS_AFTER` seconds, the Door's state is also
        read directly: idle on two reads 0.5 s apart means the macro is over (RunMacro
        starts it within milliseconds on an idle Door).
        """
        if self._result is not None or self._client._door_done():
            return True
        now = time.monotonic()
        if now - self._started < EVENTLESS_AFTER or now - self._last_read < 0.5:
            return False
        self._last_read = now
        self._idle_reads = self._idle_reads + 1 if self._client._door_idle() else 0
        if self._idle_reads < 2:
            return False
        log.warning("%s is over by the Door's state read directly; its events said: %s",
                    self.macro, self._client._events_seen(self))
        return True

    def wait(self, timeout: float = 120.0) -> MacroResult:
        """Wait for the end of the macro and collect its logs.

        :raises TimeoutError: the macro is still running after ``timeout`` seconds
            (it is left running: call :meth:`stop`).
        """
        if self._result is None:
            try:
                _wait_until(self.done, timeout, f"the end of macro {self.macro}")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc} ({self._client._events_seen(self)}; the Door is "
                                   f"{self._client._door_status()!r})") from None
            self._result = self._client._collect(self)
        return self._result

    def stop(self, timeout: float = 60.0) -> MacroResult:
        """Stop the macro (like Ctrl-C in spock) unless it is over, and wait for its end."""
        if not self.done():
            self._client.stop_macro(timeout=timeout)
        return self.wait(timeout)


class DoorClient:
    """A taurus client of one Sardana Door. See the module docstring about TANGO_HOST.

    One macro at a time: :meth:`run` (blocking) or :meth:`start` (returns a
    :class:`MacroRun`). The client-side log buffers are cleared when a macro starts,
    so a :class:`MacroResult` holds the lines of that macro only.
    """

    def __init__(self, door_name: str, settle_time: float = 0.05) -> None:
        if "TANGO_HOST" not in os.environ:
            raise RuntimeError("Set os.environ['TANGO_HOST'] before using taurus (see door.py)")
        import taurus
        from sardana.taurus.core.tango.sardana import registerExtensions
        from taurus.core.util.codecs import CodecFactory

        registerExtensions()
        self.door_name = door_name
        #: Logs of a finished macro are complete when no new line came for this long.
        self.settle_time = settle_time
        self._codec_factory = CodecFactory()
        self._door = taurus.Device(door_name)
        self._proxy = tango.DeviceProxy(door_name)
        self._lock = threading.Lock()
        # MacroStatus states by macro id, and Door states in order of arrival,
        # both since the current macro was started.
        self._statuses: dict[str, str] = {}
        self._states: list[tango.DevState] = []
        self._current: MacroRun | None = None
        self._status_attr = self._door.getAttribute("MacroStatus")
        self._status_attr.addListener(self._on_macro_status)
        self._state_attr = self._door.getAttribute("State")
        self._state_attr.addListener(self._on_state)

    @property
    def door(self) -> Any:
        """The underlying taurus Door (sardana extension class)."""
        return self._door

    @property
    def macro_server(self) -> Any:
        """The taurus MacroServer of this Door."""
        return self._door.macro_server

    def close(self) -> None:
        """Remove this client's event listeners from the Door."""
        self._status_attr.removeListener(self._on_macro_status)
        self._state_attr.removeListener(self._on_state)

    # --- events -----------------------------------------------------------------

    @staticmethod
    def _is_value_event(evt_type: Any, evt_value: Any) -> bool:
        from taurus.core.taurusbasetypes import TaurusEventType

        return (
            evt_type in (TaurusEventType.Change, TaurusEventType.Periodic)
            and evt_value is not None
            and evt_value.rvalue is not None
        )

    def _on_macro_status(self, src: Any, evt_type: Any, evt_value: Any) -> None:
        if not self._is_value_event(evt_type, evt_value) or not len(evt_value.rvalue[1]):
            return
        _, data = self._codec_factory.getCodec(evt_value.rvalue[0]).decode(evt_value.rvalue)
        with self._lock:
            for status in data:
                self._statuses[status["id"]] = status["state"]

    def _on_state(self, src: Any, evt_type: Any, evt_value: Any) -> None:
        if self._is_value_event(evt_type, evt_value):
            with self._lock:
                self._states.append(evt_value.rvalue)

    def _status_of(self, macro_id: str) -> str | None:
        with self._lock:
            return self._statuses.get(macro_id)

    def _door_done(self) -> bool:
        # The Door pushes every state change (no event filter) and pushes the
        # final one after the macro's last log line: once it is here, so are the logs.
        with self._lock:
            states = list(self._states)
        return tango.DevState.RUNNING in states and states[-1] not in _BUSY_STATES

    def _door_idle(self) -> bool:
        return self._proxy.state() not in _BUSY_STATES

    def _door_status(self) -> str:
        try:
            return f"{self._proxy.state()}: {self._proxy.status()}"
        except tango.DevFailed as exc:
            return f"unreachable: {exc.args[0].desc.strip()}"

    def _events_seen(self, run: MacroRun) -> str:
        with self._lock:
            states = [str(s) for s in self._states]
            status = self._statuses.get(run.macro_id)
        return f"Door states {states}, macro status {status}"

    def _log_buffers(self) -> dict[str, list[str]]:
        return {name: list(self._door.getLogObj(name).getLogBuffer()) for name in _LOG_STREAMS}

    def _collect(self, run: MacroRun) -> MacroResult:
        # Safety net for late log events: wait until no new line came for settle_time.
        buffers = self._log_buffers()
        while True:
            time.sleep(self.settle_time)
            new_buffers = self._log_buffers()
            if new_buffers == buffers:
                break
            buffers = new_buffers
        door_state = self._proxy.state()
        status = run.status
        if status not in FINAL_STATUSES:
            status = "exception" if door_state == tango.DevState.ALARM else "finish"
        self._current = None
        return MacroResult(
            macro=run.macro,
            status=status,
            door_state=str(door_state),
            output=buffers["Output"],
            info=buffers["Info"],
            warning=buffers["Warning"],
            error=buffers["Error"],
            debug=buffers["Debug"],
            result=buffers["Result"],
        )

    # --- running macros ---------------------------------------------------------

    def start(self, macro_name: str, *params: Any) -> MacroRun:
        """Start a macro without waiting. Repeat parameters go as nested lists:
        ``start("defmeas", "mg", ["ct01", "oned01"])``.

        :raises ValueError: unknown macro, or parameters sardana's client cannot parse.
        :raises RuntimeError: the previous macro started by this client is not over.
        """
        if self._current is not None:
            if not self._current.done():
                raise RuntimeError(f"Macro {self._current.macro} is still running")
            self._current.wait()  # keep its logs before the buffers are cleared
        if self.macro_server.getMacroInfoObj(macro_name) is None:
            raise ValueError(f"Unknown macro {macro_name!r}")
        with self._lock:
            self._states.clear()
            self._statuses.clear()
        # runMacro(synch=False) clears the log buffers, builds the macro XML (with a
        # unique id per macro) and sends RunMacro.
        try:
            self._door.runMacro(macro_name, list(params), synch=False)
        except (IndexError, AttributeError, TypeError) as exc:
            # What sardana's client-side parameter parsing raises on a wrong count/shape.
            raise ValueError(f"Invalid parameters for {macro_name}: {params!r}") from exc
        xml = self._door.getRunningXML()
        top = xml.find("macro") if xml.tag == "sequence" else xml
        run = MacroRun(self, macro_name, top.get("id"))
        self._current = run
        log.debug("Started %s %s (id %s)", macro_name, params, run.macro_id)
        return run

    def run(self, macro_name: str, *params: Any, timeout: float = 120.0,
            stop_timeout: float = 60.0) -> MacroResult:
        """Run a macro to its end and return its :class:`MacroResult`.

        A macro that raises does not raise here: see ``result.raised`` / ``result.error``.

        :raises TimeoutError: the macro did not end within ``timeout`` (it is then stopped).
        :raises MacroStuck: nor did it stop within ``stop_timeout``.
        """
        run = self.start(macro_name, *params)
        try:
            return run.wait(timeout)
        except TimeoutError:
            log.warning("Stopping %s: still running after %s s", macro_name, timeout)
        try:
            run.stop(stop_timeout)
        except TimeoutError as exc:
            raise MacroStuck(f"{macro_name} did not stop either: {exc}") from None
        raise TimeoutError(f"{macro_name} still running after {timeout} s: stopped")

    def abandon(self) -> None:
        """Forget the macro this client started, stuck (:class:`MacroStuck`) in a Sardana
        that was restarted since: the next macro can start."""
        self._current = None

    def stop_macro(self, timeout: float = 60.0) -> None:
        """Stop the macro running on the Door (StopMacro), if any, and wait until
        the Door is no longer RUNNING."""
        if self._proxy.state() not in _BUSY_STATES:
            return
        try:
            try:
                self._door.stop(synch=True, timeout=timeout)
            except TypeError:  # Sardana 3.4: Door.stop() takes no timeout
                self._door.stop(synch=True)
        except tango.DevFailed as exc:
            # The macro ended between the state check and the command.
            if exc.args[0].reason != "API_CommandNotAllowed":
                raise

    # --- environment ------------------------------------------------------------

    def get_env(self, name: str) -> Any:
        """Value of environment variable ``name`` from the client-side cache.

        :raises KeyError: the variable is not set.
        """
        return self._door.getEnvironment(name)

    def set_env(self, timeout: float = 10.0, **values: Any) -> None:
        """Set environment variables and wait until the client cache shows them
        (the cache is updated asynchronously by events)."""
        self._door.putEnvironments(values)

        def visible() -> bool:
            env = self._door.getEnvironment()
            return all(name in env and _equal(env[name], value) for name, value in values.items())

        _wait_until(visible, timeout, f"environment {sorted(values)} to be updated")

    def remove_env(self, *names: str, timeout: float = 10.0) -> None:
        """Remove environment variables (missing ones are ignored) and wait until
        the client cache no longer shows them."""
        present = [name for name in names if name in self._door.getEnvironment()]
        if not present:
            return
        self.macro_server.removeEnvironments(present)
        _wait_until(
            lambda: not any(name in self._door.getEnvironment() for name in present),
            timeout,
            f"environment {present} to be removed",
        )

    # --- demo -------------------------------------------------------------------

    def wait_elements(self, names: Iterable[str], timeout: float = 30.0) -> None:
        """Wait until the MacroServer's client-side element cache knows all ``names``."""
        names = list(names)
        _wait_until(
            lambda: all(self.macro_server.getElementInfo(name) is not None for name in names),
            timeout,
            f"elements {names}",
            period=0.1,
        )

    def setup_demo(self, timeout: float = 120.0) -> None:
        """Create Sardana's demo elements (``sar_demo``) unless they exist, wait
        until they are visible, and make the demo motors move fast (their
        default acceleration and deceleration times are 2 s)."""
        if self.macro_server.getElementInfo("mot01") is None:
            result = self.run("sar_demo", timeout=timeout)
            if not result.ok:
                raise RuntimeError(f"sar_demo ended with {result.status}: {result.error}")
        self.wait_elements(_DEMO_ELEMENTS, timeout=timeout)
        for name in _DEMO_MOTORS:
            motor = tango.DeviceProxy(self.macro_server.getElementInfo(name).full_name)
            motor.write_attribute("Acceleration", 0.01)
            motor.write_attribute("Deceleration", 0.01)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except ValueError:  # numpy arrays compare element-wise
        return repr(a) == repr(b)
