"""Scans into the same file are written in the order they were created.

A writer takes a file's lock in Redis (one scan per file at a time), but when it
starts several scans at once (catching up after a restart, or scans published
close together) their threads race for the lock, and a file could get ``#S 3``
before ``#S 2``. Each scan therefore queues for its files first; it goes on to
take the locks only when no scan created before it is queued for one of them.
blissdata's scan keys end with a ULID, which sorts by creation time.

A scan that passed its turn only waits for the locks in Redis, as before: a scan
taken over after a crash still owns its file's lock, and a later scan that passed
its turn before the earlier one came back waits for that lock, never the reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


def creation_order(scan_key: str) -> str:
    """What sorts scans by creation: the ULID after the key's last colon."""
    return scan_key.rsplit(":", 1)[-1]


class FileQueue:
    """Which scans are queued for which files, in one writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, frozenset[str]] = {}  #: creation order -> files

    def join(self, scan_key: str, files: Iterable[str]) -> None:
        with self._lock:
            self._files[creation_order(scan_key)] = frozenset(files)

    def leave(self, scan_key: str) -> None:
        with self._lock:
            self._files.pop(creation_order(scan_key), None)

    def my_turn(self, scan_key: str, files: Iterable[str]) -> bool:
        """True when no scan created before ``scan_key`` is queued for one of ``files``."""
        mine, wanted = creation_order(scan_key), frozenset(files)
        with self._lock:
            return not any(other < mine and wanted & queued
                           for other, queued in self._files.items())
