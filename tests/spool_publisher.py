"""A publisher in its own process, to be SIGKILLed: ``python -m tests.spool_publisher URL
SPOOL NUMBER POINTS end|open``. Prints ``SPOOLED`` once every point is in its spool."""

from __future__ import annotations

import sys
import time

from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.publishing.spool import Spool
from sardana_redis.scan_model import EndReason, ScanEnd
from tests.scan_descriptions import step_scan


def main() -> None:
    url, folder, number, points, end = sys.argv[1:6]
    description = step_scan(int(number), "spool", title=f"ascan mot01 0 1 {points}")
    spool = Spool(folder)
    publisher = ScanPublisher(url, description, spool=spool)
    publisher.start()
    for i in range(int(points)):
        publisher.push({"point_nb": i, "mot01": i / 10, "ct01": float(i)})
    while publisher.points_taken < int(points):
        time.sleep(0.01)
    if end == "end":
        publisher.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS), wait=0.5)
        while not any(s.end_info for s in spool.scans()):
            time.sleep(0.01)
    print("SPOOLED", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
