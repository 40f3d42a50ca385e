"""The shell shared by this package's Tango devices: :class:`ServiceDevice`.

A service device runs one background service (a scan follower, the memory
tracker), configured from device properties, started by ``init_device`` and
by the ``Start`` command, stopped by ``Stop``. Subclasses say how to configure,
start and stop the service and how healthy it is; :func:`run_server` runs one
as ``<ServerName> <instance>``.

An invalid configuration (a ``ValueError`` from :meth:`ServiceDevice._configure`,
or an unknown ``log_level``) puts the device in FAULT until its properties are
fixed and ``Init`` is run; ``Start`` refuses it.
"""

from __future__ import annotations

import logging
import sys

import tango
from tango import DevState
from tango.server import Device, command, device_property, run

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


class ServiceDevice(Device):
    """Base Tango device of the services (see the module docstring)."""

    log_level = device_property(dtype=str, default_value="INFO",
                                doc="DEBUG, INFO, WARNING or ERROR (for the whole server process)")

    # --- to implement ------------------------------------------------------------

    def _configure(self) -> None:
        """Read and check the properties (ValueError when invalid)."""
        raise NotImplementedError

    def _start(self) -> None:
        """Start the service anew (stopping the previous run, if any)."""
        raise NotImplementedError

    def _stop(self) -> None:
        """Stop the service (nothing to do when it is stopped)."""
        raise NotImplementedError

    def _is_running(self) -> bool:
        """Whether the service was started and still runs."""
        raise NotImplementedError

    def _health(self) -> tuple[DevState, str]:
        """State and Status of a validly configured device."""
        raise NotImplementedError

    # --- life cycle ----------------------------------------------------------

    def init_device(self) -> None:
        """Read the properties, check them and start the service."""
        super().init_device()
        self._config_error = ""
        try:
            configure_logging(self.log_level)
            self._configure()
        except ValueError as exc:
            self._config_error = str(exc)
            log.error("%s: invalid configuration: %s", self.get_name(), exc)
            return
        self._start()

    def delete_device(self) -> None:
        """Stop the service (server shutdown or ``Init``)."""
        self._stop()

    # --- state and status ----------------------------------------------------

    def _state_and_status(self) -> tuple[DevState, str]:
        if self._config_error:
            return DevState.FAULT, (f"Invalid configuration: {self._config_error}. "
                                    "Fix the device properties, then run Init.")
        return self._health()

    def dev_state(self) -> DevState:
        """The state, computed now (see the subclass' module docstring)."""
        state, _ = self._state_and_status()
        self.set_state(state)
        return state

    def dev_status(self) -> str:
        """The status, computed now: why the device is in its state."""
        _, status = self._state_and_status()
        self.set_status(status)
        return status

    # --- commands --------------------------------------------------------------

    @command
    def Start(self) -> None:
        """Start the service again (after Stop, or after it stopped on an error)."""
        if self._config_error:
            tango.Except.throw_exception(
                f"{type(self).__name__}_InvalidConfiguration",
                f"Cannot start: invalid configuration: {self._config_error}", "Start")
        if self._is_running():
            return
        self._start()

    @command
    def Stop(self) -> None:
        """Stop the service until Start."""
        self._stop()
        log.info("%s: stopped by the Stop command", self.get_name())


def run_server(device_class: type[Device], args: list[str] | None = None) -> None:
    """Run ``device_class`` as the Tango server of the same name.

    ``args`` are the server arguments (default: ``sys.argv[1:]``), the instance
    first. The server is named after the class however it is started (Tango
    would name it after ``argv[0]``, which ``python -m`` sets to a file path).
    """
    argv = sys.argv[1:] if args is None else args
    run((device_class,), args=[device_class.__name__, *argv])
