"""Publisher heartbeats: how the memory tracker tells a dead publisher from a quiet scan.

A scan can legitimately publish nothing for a long time (a paused scan, long count
times), so "no new data" alone cannot tell that its MacroServer died. While a scan is
open, its publisher sets ``sardana_redis:heartbeat:<scan key>`` to the current time every
:data:`PERIOD` seconds (and deletes it once the scan is closed). The memory tracker
closes an open scan whose heartbeat and data both stopped changing for
``--publisher-timeout`` seconds; scans without heartbeat (other publishers) keep the
longer ``--inactive-scan-deletion``.
"""

from __future__ import annotations

import time

import redis

KEY_PREFIX = "sardana_redis:heartbeat"
#: Seconds between two heartbeats of a publisher.
PERIOD = 5.0
#: Expiration of a heartbeat key: the key of a publisher that died goes away by itself.
TTL = 86400


def heartbeat_key(scan_key: str) -> str:
    """The heartbeat key of a blissdata scan."""
    return f"{KEY_PREFIX}:{scan_key}"


def beat(client: redis.Redis, scan_key: str) -> None:
    """One heartbeat of the publisher of ``scan_key``."""
    client.set(heartbeat_key(scan_key), repr(time.time()), ex=TTL)


def stop_beating(client: redis.Redis, scan_key: str) -> None:
    """The scan is closed: its heartbeat is no longer needed."""
    client.delete(heartbeat_key(scan_key))
