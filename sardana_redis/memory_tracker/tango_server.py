"""The memory tracker as a Tango device server: ``RedisMemoryTracker <instance>``.

Register it first (``sardana-redis tango-register RedisMemoryTracker <instance>
--device a/b/c --property redis_url=redis://host:6379 ...``), then run
``RedisMemoryTracker <instance>`` (or ``python -m sardana_redis.tango_server
RedisMemoryTracker <instance>``). The device properties are the options of
``sardana-redis memory-tracker``, with the same defaults. The device is a
:class:`~sardana_redis.tango_service.ServiceDevice` whose service is the tracker loop
(:func:`~sardana_redis.memory_tracker.tracker.run`) in a daemon thread, started by
``init_device`` and by ``Start``, stopped by ``Stop``.

State and Status are computed when read:

========  ==============================================================
INIT      started, no monitoring cycle done yet
ON        the tracker runs, Redis answers and its memory is below the
          cleaning threshold (Status: memory, scans, writers)
ALARM     Redis is unreachable or out of memory (the tracker retries by
          itself), or the memory stays above the cleaning threshold after
          freeing (Status says which)
FAULT     invalid properties (fix them, then ``Init``), or the tracker
          thread stopped on an error, e.g. Redis has no ``maxmemory`` and
          the ``max_memory`` property is empty (see the Status and the
          server log)
OFF       stopped by the ``Stop`` command: nothing expires or is freed
          until ``Start``
========  ==============================================================
"""

from __future__ import annotations

import logging
import threading

import redis
from tango import DevState
from tango.server import device_property

from sardana_redis import datastore
from sardana_redis.memory_tracker import tracker as tracking
from sardana_redis.memory_tracker.settings import (
    SettingError,
    TrackerSettings,
    specs,
    tango_properties,
)
from sardana_redis.memory_tracker.settings import from_properties as settings_from_properties
from sardana_redis.memory_tracker.tracker import MemoryTracker, TrackerCounters, format_bytes
from sardana_redis.redis_connection import Backoff, redis_client
from sardana_redis.redis_url import DEFAULT_REDIS_URL, redact_redis_url, with_socket_timeouts
from sardana_redis.tango_service import ServiceDevice, shown

#: Not ``__name__``: run with ``python -m``, that is ``__main__``, outside the
#: ``sardana_redis`` logger that ``log_level`` sets.
log = logging.getLogger("sardana_redis.memory_tracker.tango_server")


def memory_usage(counters: TrackerCounters) -> float:
    """Used memory in % of the limit (0 before the limit is known)."""
    return 100.0 * counters.used_memory / counters.max_memory if counters.max_memory else 0.0


class TrackerThread(threading.Thread):
    """One run of the tracker loop, with what the device's state needs to know."""

    def __init__(self, device: str, url: str, settings: TrackerSettings, init_db: bool) -> None:
        super().__init__(name=f"{device} memory tracker", daemon=True)
        self.device = device
        self.url = url
        self.init_db = init_db
        self.client = redis_client(url)
        self.tracker = MemoryTracker(self.client, settings)
        self.stopping = threading.Event()
        self.cycled = False  #: a monitoring cycle has run
        self.redis_error: Exception | None = None  #: of the last attempt, None once a cycle ran
        self.failure = ""  #: why the loop ended, when it ended on an error

    def run(self) -> None:
        """The tracker loop until :meth:`stop`; an error that ends it goes to :attr:`failure`."""
        setup = (lambda: datastore.init_db(self.url)) if self.init_db else None
        try:
            tracking.run(self.client, self.tracker.settings, self.stopping, self.tracker,
                         setup=setup, report=self._report, backoff=Backoff(self.url))
        except SettingError as exc:  # no maxmemory
            self.failure = exc.for_tango()
            log.error("%s: memory tracker stopped: %s", self.device, self.failure)
        except (ValueError, datastore.DatabaseNotReady) as exc:  # not a blissdata Redis
            self.failure = str(exc)
            log.error("%s: memory tracker stopped: %s", self.device, self.failure)
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("%s: memory tracker stopped by an unexpected error", self.device)
        finally:
            self.client.close()

    def _report(self, error: Exception | None) -> None:
        self.redis_error = error
        self.cycled = self.cycled or error is None

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop (at once between cycles) and wait for it up to ``timeout`` s."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)


class RedisMemoryTracker(ServiceDevice):
    """Keeps a Redis of blissdata scans below its memory limit, writer-aware
    (see the module docstring)."""

    ACTIVITY = "track memory"

    redis_url = device_property(dtype=str, default_value=DEFAULT_REDIS_URL,
                                doc="Redis URL of the blissdata scans")
    init_db = device_property(dtype=bool, default_value=False,
                              doc="initialise an empty Redis for blissdata at start")
    locals().update(tango_properties(device_property))  # the tracker's settings (settings.py)

    # --- life cycle ----------------------------------------------------------

    def _configure(self) -> None:
        """The Redis URL and the tracker settings from the properties (ValueError when
        invalid)."""
        self._url = with_socket_timeouts(self.redis_url, connect=5, read=30)
        self._settings = self._make_settings()

    def _make_settings(self) -> TrackerSettings:
        """The tracker settings from the properties (ValueError naming the property)."""
        try:
            return settings_from_properties({name: getattr(self, name) for name in specs()})
        except SettingError as exc:
            raise ValueError(exc.for_tango()) from None

    def _make_service(self) -> TrackerThread:
        """A new thread and tracker (counters start again from 0)."""
        return TrackerThread(self.get_name(), self._url, self._settings, self.init_db)

    def _started(self, thread: TrackerThread) -> str:
        return f"tracking the memory of {redact_redis_url(self.redis_url)}"

    def _died(self, thread: TrackerThread) -> str:
        why = thread.failure or "the tracker thread died"
        return f"Not tracking memory: {why} (see the server log). Fix it, then run Init."

    # --- state and status ----------------------------------------------------

    def _running_health(self, thread: TrackerThread) -> tuple[DevState, str]:
        url = redact_redis_url(self.redis_url)
        error = thread.redis_error
        # types-redis 4.6 (required by redis-om) shadows redis-py's types, lacks this error
        if isinstance(error, redis.OutOfMemoryError):  # type: ignore[attr-defined]
            return DevState.ALARM, f"Redis {url} is out of memory, retrying: {error}"
        if error is not None:
            return DevState.ALARM, f"Redis unreachable, retrying: {url}: {error}"
        if not thread.cycled:
            return DevState.INIT, f"Starting: first monitoring cycle on {url}"
        counters = thread.tracker.counters
        threshold = thread.tracker.settings.cleaning_threshold
        memory = (f"{format_bytes(counters.used_memory)} of {format_bytes(counters.max_memory)} "
                  f"used ({memory_usage(counters):.1f}%, cleaning above {threshold}%)")
        if counters.used_memory >= counters.max_memory * threshold // 100:
            return DevState.ALARM, (f"Memory above the cleaning threshold: {memory}; the tracker "
                                    "cannot free enough (see the server log).")
        writers = ", ".join(counters.writers) or "none"
        if counters.gone_writers:
            writers += f" (not alive, not waited for: {', '.join(counters.gone_writers)})"
        return DevState.ON, (f"Tracking {counters.tracked_scans} scans of {url}: {memory}; "
                             f"writers: {writers}; {format_bytes(counters.freed_bytes)} freed, "
                             f"{counters.dropped_unpersisted_scans} unsaved scans dropped.")

    # --- attributes -------------------------------------------------------------

    def _snapshot(self) -> TrackerCounters:
        return self._service.tracker.counters if self._service is not None else TrackerCounters()

    UsedMemory = shown("used_memory", dtype=int, unit="B",
                       doc="memory used by Redis at the last cycle")
    MaxMemory = shown("max_memory", dtype=int, unit="B",
                      doc="Redis' maxmemory, or the max_memory property")
    MemoryUsage = shown(memory_usage, dtype=float, unit="%", doc="UsedMemory in % of MaxMemory")
    TrackedScans = shown("tracked_scans", dtype=int, doc="scans in Redis the tracker follows")
    FreedBytes = shown("freed_bytes", dtype=int, unit="B", doc="memory freed since the last Start")
    ExpiredScans = shown("expired_scans", dtype=int,
                         doc="closed scans given their expiration since the last Start")
    ClosedAbandonedScans = shown("closed_abandoned", dtype=int,
                                 doc="abandoned open scans closed as FAILURE since the last Start")
    DroppedUnsavedScans = shown("dropped_unpersisted_scans", dtype=int,
                                doc="whole scans deleted before every writer saved them, "
                                    "since the last Start")
    DroppedUnsavedEntries = shown("dropped_unpersisted_entries", dtype=int,
                                  doc="stream entries deleted before every writer saved them, "
                                      "since the last Start")
    LastDrop = shown("last_drop", dtype=str,
                     doc="the last drop of unsaved data (empty: none since the last Start)")
    LastCycleTime = shown("last_cycle_seconds", dtype=float, unit="s",
                          doc="duration of the last monitoring cycle")

