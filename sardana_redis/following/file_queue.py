"""Scans into the same file are written in the order they were published.

A writer takes a file's lock in Redis (one scan per file at a time), but when it
starts several scans at once (catching up after a restart, or scans published
close together) their threads race for the lock, and a file could get ``#S 3``
before ``#S 2``. The follower therefore hands scans over in history order, each
with its sequence number, and waits until each one has queued for its files
(:attr:`ScanJob.queued`) before starting the next; a scan then takes a file only
when no scan handed over before it is still queued for that file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class FileQueue:
    """Which scans (by sequence number) are queued for which files, in one writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[int, frozenset[str]] = {}

    def join(self, seq: int, files: Iterable[str]) -> None:
        with self._lock:
            self._files[seq] = frozenset(files)

    def leave(self, seq: int) -> None:
        with self._lock:
            self._files.pop(seq, None)

    def my_turn(self, seq: int, path: str) -> bool:
        """True when no scan handed over before ``seq`` is queued for ``path``."""
        with self._lock:
            return not any(other < seq and path in files for other, files in self._files.items())
