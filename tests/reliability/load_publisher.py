"""One load-generating process: several doors (MacroServers) scanning at once, each
publishing its scans one after the other with the recorder's own
:class:`~sardana_redis.publishing.publisher.ScanPublisher`, at a fixed point rate.

Run as ``python -m tests.reliability.load_publisher URL FIRST_DOOR DOORS SCANS POINTS RATE
DIR SPECTRA``; prints one JSON line per scan: door, number, key, points, end time, problem.
Each door has its session (``door<N>``) and its SPEC and NeXus files in DIR, as a beamline.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from sardana_redis.publishing.publisher import ScanPublisher
from sardana_redis.scan_model import EndReason, ScanDescription, ScanEnd
from tests.scan_descriptions import counters, moveable, point_nb, requested_files, spectrum, step_scan

COUNTERS = [f"ct{i:02d}" for i in range(1, 9)]


def description(door: int, number: int, directory: str, spectra: bool) -> ScanDescription:
    """A step scan: point number, one motor, 8 counters and maybe a 1024-point spectrum."""
    columns = (point_nb(), moveable(), *counters(*COUNTERS), *([spectrum()] if spectra else []))
    return step_scan(number, f"door{door}", columns,
                     files=requested_files(spec=f"{directory}/door{door}.dat",
                                           nexus=f"{directory}/door{door}.h5"))


def run(url: str, doors: range, scans: int, points: int, rate: float, directory: str,
        spectra: bool) -> list[dict]:
    """``scans`` rounds of one scan per door, at once; returns one summary per scan."""
    return [summary for number in range(1, scans + 1)
            for summary in one_round(url, doors, number, points, rate, directory, spectra)]


def one_round(url: str, doors: range, number: int, points: int, rate: float, directory: str,
              spectra: bool) -> list[dict]:
    """Scan ``number`` of every door at once, ``rate`` points/s each."""
    publishers = [ScanPublisher(url, description(d, number, directory, spectra)) for d in doors]
    for p in publishers:
        p.start()
    spectrum = np.random.default_rng(number).random(1024)
    start = time.monotonic()
    for i in range(points):
        record = {"point_nb": i, "mot01": i / 10, **{c: float(i * 3 + k) for k, c in enumerate(COUNTERS)}}
        if spectra:
            record["oned01"] = spectrum + i
        for p in publishers:
            p.push(record)
        delay = start + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    summaries = []
    for p in publishers:
        p.finish(ScanEnd("2026-01-01T00:00:01+00:00", EndReason.SUCCESS), wait=120)
        closed = p.wait(120) and p.state.name == "CLOSED"  # finish() returns while Redis is away
        summaries.append({"door": p.description.identity.session, "number": number, "key": p.key,
                          "points": points, "end": time.time(), "closed": closed,
                          "problem": p.problem})
    return summaries


def main() -> None:
    url, first, doors, scans, points, rate, directory, spectra = sys.argv[1:9]
    for summary in run(url, range(int(first), int(first) + int(doors)), int(scans), int(points),
                       float(rate), directory, spectra == "1"):
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
