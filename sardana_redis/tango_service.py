"""The shell shared by this package's Tango devices: :class:`ServiceDevice`.

A service device runs one background service (a scan follower, the memory
tracker: anything with ``start``, ``stop`` and ``is_alive``), configured from
device properties, started by ``init_device`` and by the ``Start`` command,
stopped by ``Stop``. The device owns the service's life and the states every
service shares (OFF when stopped, FAULT when its thread died or its configuration
is invalid); subclasses say how to configure and make the service and how healthy
a running one is. :meth:`ServiceDevice.main` (:func:`run_server`) runs one as
``<ServerName> <instance>``.

An invalid configuration (a ``ValueError`` from :meth:`ServiceDevice._configure`,
or an unknown ``log_level``) puts the device in FAULT until its properties are
fixed and ``Init`` is run; ``Start`` refuses it.
"""

from __future__ import annotations

import logging
import operator
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import tango
from tango import DevState
from tango.server import Device, attribute, command, device_property, run

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


class Service(Protocol):
    """What a device runs: started once, stopped, alive while its threads run."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def is_alive(self) -> bool: ...


def shown(value: str | Callable[[Any], Any], **declaration: Any) -> attribute:
    """A read-only attribute showing the service's :meth:`ServiceDevice._snapshot`: one of its
    fields by name, or a function of it. ``declaration``: dtype, unit, doc... as for PyTango's
    ``attribute``; the attribute is named after the class variable it is assigned to."""
    read = operator.attrgetter(value) if isinstance(value, str) else value
    return attribute(fget=lambda device: read(device._snapshot()), **declaration)


class ServiceDevice(Device):
    """Base Tango device of the services (see the module docstring)."""

    #: What the service does, in the Status of a stopped device ("run Start to ... again").
    ACTIVITY: ClassVar[str] = "run the service"

    log_level = device_property(dtype=str, default_value="INFO",
                                doc="DEBUG, INFO, WARNING or ERROR (for the whole server process)")

    # --- to implement ------------------------------------------------------------

    def _configure(self) -> None:
        """Read and check the properties (ValueError when invalid)."""
        raise NotImplementedError

    def _make_service(self) -> Service:
        """A new service from the configuration (a stopped one is never started again)."""
        raise NotImplementedError

    def _started(self, service: Any) -> str:
        """The log line of a started service (after the device name)."""
        return "started"

    def _died(self, service: Any) -> str:
        """The Status of a service whose thread died."""
        return "The service's thread died (see the server log): run Start to " \
               f"{self.ACTIVITY} again."

    def _running_health(self, service: Any) -> tuple[DevState, str]:
        """State and Status of a running service."""
        raise NotImplementedError

    def _snapshot(self) -> Any:
        """The service's figures the :func:`shown` attributes read (zeros when stopped)."""
        raise NotImplementedError

    @classmethod
    def main(cls, args: list[str] | None = None) -> None:
        """Entry point of the server's console script (``<ServerName> <instance>``)."""
        run_server(cls, args)

    # --- life cycle ----------------------------------------------------------

    def init_device(self) -> None:
        """Read the properties, check them and start the service."""
        super().init_device()
        self._service: Any = None
        self._should_run = False
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

    def _start(self) -> None:
        """Start a new service (stopping the previous run, if any)."""
        self._stop()
        self._service = self._make_service()
        self._service.start()
        self._should_run = True
        log.info("%s: %s", self.get_name(), self._started(self._service))

    def _stop(self) -> None:
        """Stop the service (nothing to do when it is stopped)."""
        if self._should_run and self._service is not None:
            self._service.stop()
        self._should_run = False

    def _is_running(self) -> bool:
        """Whether the service was started and still runs."""
        return self._should_run and self._service is not None and self._service.is_alive()

    # --- state and status ----------------------------------------------------

    def _state_and_status(self) -> tuple[DevState, str]:
        if self._config_error:
            return DevState.FAULT, (f"Invalid configuration: {self._config_error}. "
                                    "Fix the device properties, then run Init.")
        service = self._service
        if service is None or not self._should_run:
            return DevState.OFF, f"Stopped by the Stop command: run Start to {self.ACTIVITY} again."
        if not service.is_alive():
            return DevState.FAULT, self._died(service)
        return self._running_health(service)

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
