"""Reliability, bounded memory (issue 13): scans declaring absurd numbers of streams or
points, or absurd shapes, are refused with a log line while the writers stay small and
responsive, and a backlog of 2D frames is read within the read budget.

A real Redis Stack server, real writer and tracker processes; hostile scans are published
through blissdata directly (what a hostile or broken publisher can do), normal ones
through the recorder's publisher, and their points are counted in the files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from sardana_redis.following.limits import READ_BUDGET
from tests.reliability.accounting import tally
from tests.reliability.report import full_scale
from tests.reliability.service_stack import (  # noqa: F401 (stacks: a fixture)
    WRITERS,
    ServiceStack,
    assert_running,
    stacks,
    wait_for,
)

MB = 1 << 20
FRAME = (1024, 1024)  #: uint16: 2 MB a frame
PER_ENTRY = 4  #: frames a Redis entry holds (a detector publishing in batches)


def rss(pid: int) -> tuple[int, int]:
    """Resident memory of a process now and at its peak (VmRSS, VmHWM), in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return tuple(int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM"))


def publish(url: str, number: int, root: Path, streams: dict[str, tuple[str, tuple]],
            info: dict | None = None, send=None) -> str:
    """A scan straight through blissdata into ``root/limits.dat`` and ``root/limits.h5``,
    with ``streams`` (name -> (dtype, shape)); ``send(made)`` publishes its data."""
    files = [{"path": str(root / "limits.dat"), "format": "spec"},
             {"path": str(root / "limits.h5"), "format": "nexus"}]
    store = DataStore(url)
    scan = store.create_scan({"name": "ascan", "number": number, "data_policy": "no_policy",
                              "session": "limits"},
                             info={"title": f"ascan #{number}", "sardana": {"requested_files": files},
                                   **(info or {})})
    made = {name: scan.create_stream(Stream.make_definition(name, dtype, shape))
            for name, (dtype, shape) in streams.items()}
    scan.prepare()
    scan.start()
    if send is not None:
        send(made)
    for stream in made.values():
        stream.seal()
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    return scan.key


def counters(points: int) -> tuple[dict, callable]:
    """A point number and a counter, ``points`` each (what the accounting reads)."""
    streams = {"#Pt No": ("int64", ()), "ct01": ("float64", ())}

    def send(made):
        made["#Pt No"].send(np.arange(points))
        made["ct01"].send(np.arange(points) / 10)

    return streams, send


def far_ahead(made):
    made["#Pt No"].send(np.arange(3))
    made["#Pt No"].event_stream._write_index = 10**9  # an index far ahead
    made["#Pt No"].send(np.arange(3))


def test_absurd_scans_are_refused_and_memory_stays_bounded(stacks, reliability):
    # --max-streams 64: blissdata takes minutes to create the 4097 streams over the default
    stack: ServiceStack = stacks(maxmemory="1gb", writer_options=["--max-streams", "64"])
    stack.start_all()
    root = stack.root
    scalar = {"#Pt No": ("int64", ())}
    hostile = {  # what each declares -> the reason in the log line
        "100 streams (--max-streams 64)": ({f"ct{i:03d}": ("float64", ()) for i in range(100)},
                                           None, None, "100 streams declared"),
        "shape 1e9 x 1e9": ({**scalar, "img": ("float64", (10**9, 10**9))}, None, None,
                            "more than the limit"),
        "negative dimension": ({**scalar, "img": ("uint8", (-5, 10))}, None, None,
                               "negative dimension"),
        "1D of 1e9 points a value": ({**scalar, "mca": ("float64", (10**9,))}, None, None,
                                     "8000000000 bytes"),
        "1e12 points declared": ({**scalar}, {"npoints": 10**12}, None,
                                 "1000000000000 points declared"),
        "an index 1e9 ahead": ({**scalar}, None, far_ahead, "reached 1000000003 points"),
    }
    refused, times = {}, {}
    for number, (what, (streams, info, send, reason)) in enumerate(hostile.items(), 1):
        start = time.monotonic()
        key = publish(stack.url, number, root, streams, info, send)
        records = stack.wait_written([key], timeout=60)
        times[what] = time.monotonic() - start
        for (_, writer), record in records.items():
            assert record.status == "failed" and record.detail.startswith("refused: "), \
                (what, writer, record)
            log = stack.services[writer].log()
            assert f"Scan {key} #{number} refused: " in log and reason in log, (what, writer)
        refused[what] = key
    assert_running(stack)

    # a backlog of 2D frames, published while the NeXus writer is stopped
    frames = 300 if full_scale() else 200
    stack.services["nexus-writer"].stop()
    streams, send_counters = counters(frames)

    def send_frames(made):
        send_counters(made)
        for i in range(0, frames, PER_ENTRY):
            made["frame"].send(np.full((PER_ENTRY, *FRAME), i, dtype=np.uint16))

    number = len(hostile) + 1
    backlog = publish(stack.url, number, root, {**streams, "frame": ("uint16", FRAME)},
                      send=send_frames)
    writer = stack.start_writer("nexus-writer")
    before = rss(writer.process.pid)[0]
    stack.wait_written([backlog], timeout=120)
    peak = rss(writer.process.pid)[1]
    # the next normal scan (the recorder's publisher) is written whole by both writers
    normal = stack.scan(number + 1, "normal")
    normal.push(200)
    assert normal.finish(), normal.publisher.problem
    stack.wait_written([normal.key], timeout=60)
    assert_running(stack)

    published = {**normal.refs(),
                 ("spec", str(root / "limits.dat"), number): frames,
                 ("nexus", str(root / "limits.h5"), number): frames}
    result = reliability.record(tally(
        f"{len(hostile)} scans with absurd declarations, then {frames} 2D frames "
        f"({frames * 2} MB) of backlog", published))
    result.figures["refused"] = ", ".join(f"{what} in {t:.1f} s" for what, t in times.items())
    result.figures["NeXus writer RSS"] = (f"{before / MB:.0f} MB at start, peak {peak / MB:.0f} MB "
                                          f"while writing the backlog (read budget "
                                          f"{READ_BUDGET // MB} MB)")
    assert result.clean, result
    # a batch is read, decoded, shuffled and written: a few copies of one budget, never
    # the whole 400-600 MB backlog
    assert peak - before < 5 * READ_BUDGET, result.figures
    assert max(times.values()) < 30, times
    # SIGTERM answered while idle after all this
    for name in WRITERS:
        start = time.monotonic()
        stack.services[name].stop()
        assert time.monotonic() - start < 10, name
