"""Holding a scan open in Redis after its last record, for custom data added after it.

Sardana's macros add custom data once the scan ended (a fit of the scan's
columns, a derived column: ``ascan_with_addcustomdata``, ``ascanct_midtrigger``).
Its file recorders append them to the closed file. A blissdata scan's
``scan_info`` cannot change once the scan is closed, so the publisher keeps the
scan open, with every point already in Redis, until one of:

- the macro that ran the scan (its top-level macro) has ended;
- a later scan started under the same top-level macro (a macro running scans in
  a loop: each scan's ``after`` part ends where the next scan begins);
- :data:`CUSTOM_DATA_WAIT` seconds passed since the scan's end.

Custom data coming later is told to the user, never silently dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Longest time a scan stays open after its end, waiting for custom data.
CUSTOM_DATA_WAIT = 10.0


class CloseHold:
    """Whether a scan must still be kept open; thread-safe, ends once and for all."""

    def __init__(self, still_needed: Callable[[], bool], at_most: float = CUSTOM_DATA_WAIT) -> None:
        self._still_needed = still_needed
        self._deadline = time.monotonic() + at_most
        self._released = threading.Event()

    def release(self) -> None:
        """End the hold now (the next scan started, the recorder is going away)."""
        self._released.set()

    @property
    def released(self) -> bool:
        """True once the scan may close: released, timed out, or no longer needed."""
        if self._released.is_set():
            return True
        try:
            needed = time.monotonic() < self._deadline and self._still_needed()
        except Exception:  # the macro's status could not be read: do not hold a scan for it
            needed = False
        if not needed:
            self._released.set()
        return not needed


class HoldsByMacro:
    """The holds of scans run under each top-level macro, so that a new scan under the
    same macro releases those of the scans before it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[int, list[CloseHold]] = {}

    def add(self, macro_id: int, hold: CloseHold) -> None:
        with self._lock:
            self._holds = {k: [h for h in v if not h.released] for k, v in self._holds.items()}
            self._holds = {k: v for k, v in self._holds.items() if v}
            self._holds.setdefault(macro_id, []).append(hold)

    def release(self, macro_id: int) -> None:
        """A new scan started under ``macro_id``: the scans before it may close."""
        with self._lock:
            holds = self._holds.pop(macro_id, [])
        for hold in holds:
            hold.release()
