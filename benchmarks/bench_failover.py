"""Redis Sentinel failover: how long clients are without a primary.

A RedisHA set on loopback (a primary, one replica, three sentinels, quorum 2,
down-after-milliseconds 2000, blissdata initialised) has its primary SIGKILLed,
round after round (10; quick: 3); the killed node comes back as a replica before
the next round. Measured from the SIGKILL: the first sentinel that names the new
primary, and every sentinel naming it with the node answering ROLE master (what
a client asking any sentinel needs). Then planned failovers (SENTINEL FAILOVER,
3 rounds): the same, from the command.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from benchmarks.common import bench_main, percentiles, print_table
from sardana_redis.datastore import init_db
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.redis_server import RedisStackServer


def first_report(ha: RedisHA, old: RedisStackServer, timeout: float = 30.0) -> float:
    """When a sentinel first names a primary other than ``old`` (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sentinel in ha.sentinels:
            address = sentinel.primary_address()
            if address is not None and address[1] != old.port:
                return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError("no sentinel named a new primary")


def run(quick: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rounds = 3 if quick else 10
    crash, planned = [], []
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp, \
            RedisHA(Path(tmp)) as ha:
        init_db(ha.primary_url)
        ha.wait_replicas_synced()
        for _ in range(rounds):
            old = ha.primary()
            died = ha.kill_primary()
            first = first_report(ha, old)
            ha.wait_promoted(old)
            crash.append((first - died, time.monotonic() - died))
            ha.restart(old)
        for _ in range(3):
            asked = time.monotonic()
            old = ha.failover()
            first = first_report(ha, old)
            ha.wait_promoted(old)
            planned.append((first - asked, time.monotonic() - asked))
            ha.wait_replicas_synced(60)  # Sentinel turns the old primary into a replica
    rows = []
    for name, times in (("primary SIGKILLed", crash), ("SENTINEL FAILOVER", planned)):
        for label, values in (("first sentinel names it", [t[0] for t in times]),
                              ("all sentinels + ROLE master", [t[1] for t in times])):
            p50, p95, worst = percentiles(values)
            rows.append((name, label, len(values), f"{min(values):.2f}", f"{p50:.2f}",
                         f"{worst:.2f}"))
    for name, times in (("SIGKILL", crash), ("SENTINEL FAILOVER", planned)):
        print(f"{name} -> first sentinel, each round (s):", " ".join(f"{t[0]:.2f}" for t in times))
    print_table("Seconds without a primary (down-after-milliseconds 2000, quorum 2 of 3)",
                ["event", "until", "rounds", "min", "median", "max"], rows)


if __name__ == "__main__":
    bench_main(run, __doc__)
