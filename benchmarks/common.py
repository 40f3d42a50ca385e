"""Shared helpers: a throwaway Redis, a fake Sardana record list, blissdata's raw path, tables."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream
from sardana.macroserver.scan.scandata import ColumnDesc

from sardana_redis.datastore import init_db, open_data_store
from sardana_redis.local_stack.redis_ha import RedisHA
from sardana_redis.local_stack.redis_server import RedisStackServer
from sardana_redis.recorder.redis_bliss_recorder import RedisBlissRecorder
from sardana_redis.redis_url import normalize_redis_url

logging.getLogger("sardana_redis").setLevel(logging.WARNING)  # no per-scan INFO lines

#: The repository root: the working directory of benchmark subprocesses.
ROOT = Path(__file__).resolve().parent.parent
SESSION = "bench"
MOTOR = "mot01"
#: The 8 counters: (full Tango name, label), as Sardana's datadesc has them.
COUNTERS = [(f"tango://127.0.0.1:10000/expchan/ctctrl01/{i}", f"ct{i:02d}") for i in range(1, 9)]
#: record.data keys, in datadesc order (11 columns).
KEYS = ["point_nb", MOTOR, *(name for name, _ in COUNTERS), "timestamp"]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisStackServer]:
    """A throwaway Redis Stack in a temporary folder, initialised for blissdata."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        with RedisStackServer(Path(tmp), maxmemory="4gb") as server:
            init_db(server.url)
            yield server


@contextlib.contextmanager
def redis_ha() -> Iterator[RedisHA]:
    """A throwaway Redis managed by Sentinel (a primary, 1 replica, 3 sentinels), initialised
    for blissdata: its ``redis+sentinel://`` URL makes the publisher WAIT for the replica."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-ha-") as tmp:
        with RedisHA(Path(tmp), replicas=1, maxmemory="4gb") as ha:
            init_db(ha.url)
            yield ha


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by process ``pid`` (from /proc, 10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def datadesc(npoints: int) -> list[ColumnDesc]:
    """``#Pt No``, mot01, ct01..ct08, ``dt``: real Sardana ColumnDesc objects."""
    cols = [ColumnDesc(name="point_nb", label="#Pt No", dtype="int64",
                       min_value=0, max_value=npoints - 1),
            ColumnDesc(name=MOTOR, label=MOTOR, dtype="float64", min_value=0.0, max_value=10.0,
                       instrument="", is_reference=True)]
    for name, label in COUNTERS:
        cols.append(ColumnDesc(name=name, label=label, dtype="float64", shape=[],
                               instrument="", source=f"{name}/value", output=True,
                               conditioning="", normalization=0, plot_type=1,
                               plot_axes=[MOTOR], data_units="No unit",
                               value_ref_enabled=False))
    cols.append(ColumnDesc(name="timestamp", label="dt", dtype="float64"))
    return cols


class FakeMacro:
    """What the recorder asks of a scan macro: environment, name, door, number of points."""

    def __init__(self, url: str, npoints: int) -> None:
        self.env = {"RedisURL": url, "RedisSession": SESSION}
        self.nb_points = npoints
        self.warnings: list[str] = []

    def getEnv(self, name: str) -> Any:
        return self.env[name]  # KeyError: the recorder falls back to its default

    def getName(self) -> str:
        return "ascan"

    def getDoorName(self) -> str:
        return "Door_bench_1"

    def warning(self, msg: str, *args: Any) -> None:
        self.warnings.append(msg % args if args else msg)


class FakeRecordList:
    """A record list as recorders see it: only ``getEnviron()``."""

    def __init__(self, serialno: int, npoints: int) -> None:
        now = datetime.datetime.now()
        self.env = {
            "serialno": serialno, "title": f"ascan mot01 0 10 {npoints - 1} 0.01",
            "user": "bench", "starttime": now, "startts": now.timestamp(),
            "ScanDir": None, "ScanFile": None, "datadesc": datadesc(npoints),
            "counters": [name for name, _ in COUNTERS], "ref_moveables": [MOTOR],
            "preScanSnapShot": [], "instrumentlist": [], "estimatedtime": npoints * 0.01,
            "total_scan_intervals": npoints - 1, "macro_id": f"bench-{serialno}",
            "SampleInfo": {}, "SourceInfo": {}, "DataCompressionRank": -1,
        }

    def getEnviron(self) -> dict[str, Any]:
        return self.env

    def end(self) -> None:
        """What Sardana adds to the environment before ``endRecordList``."""
        now = datetime.datetime.now()
        self.env.update(endtime=now, endts=now.timestamp(), deadtime=0.0, endstatus="Normal")


class Record:
    """A Sardana record: its ``data`` dict keyed by column name."""

    __slots__ = ("data", "recordno")

    def __init__(self, data: dict[str, Any], recordno: int) -> None:
        self.data = data
        self.recordno = recordno


def record_data(i: int, t: float) -> dict[str, Any]:
    """One point's ``record.data``: Python int/floats, as a step scan delivers them."""
    data: dict[str, Any] = {"point_nb": i, MOTOR: i * 0.01}
    for k, (name, _) in enumerate(COUNTERS):
        data[name] = float(i + k)
    data["timestamp"] = t
    return data


def new_recorder(url: str, serialno: int, npoints: int) -> tuple[RedisBlissRecorder, FakeRecordList, FakeMacro]:
    macro = FakeMacro(url, npoints)
    return RedisBlissRecorder(macro=macro), FakeRecordList(serialno, npoints), macro


def push_records(rec: RedisBlissRecorder, rl: FakeRecordList, macro: FakeMacro, rate: float,
                 n: int, t0: float | None = None) -> None:
    """Records 0..n-1 through ``rec`` at ``rate`` Hz (paced from ``t0``, perf_counter, default
    now), ``dt`` the time.time() at push time; then the end of the record list, no warning."""
    if t0 is None:
        t0 = time.perf_counter()
    rec.startRecordList(rl)
    for i in range(n):
        pace(rate, t0, i)
        rec.writeRecord(Record(record_data(i, time.time()), i))
    rl.end()
    rec.endRecordList(rl)
    assert not macro.warnings, macro.warnings


def check_published(url: str, number: int, npoints: int, ncolumns: int = len(KEYS)) -> str:
    """Assert that scan ``number`` of the bench session is CLOSED, ``npoints`` in each of its
    ``ncolumns`` streams."""
    store = open_data_store(url, init=False)
    _, keys = store.search_existing_scans(session=SESSION, number=number)
    assert len(keys) == 1, f"{len(keys)} scans #{number} in Redis"
    scan = store.load_scan(keys[0])
    assert scan.state.name == "CLOSED", scan.state
    lengths = {name: len(s) for name, s in scan.streams.items()}
    assert len(lengths) == ncolumns and set(lengths.values()) == {npoints}, lengths
    return scan.key


class RawScan:
    """blissdata's own publishing API, point by point: one ``send`` per column and point."""

    def __init__(self, url: str, number: int) -> None:
        self.store = DataStore(normalize_redis_url(url))
        ident = {"name": "raw", "number": number, "data_policy": "no_policy", "session": SESSION}
        self.scan = self.store.create_scan(ident, info={"title": "raw blissdata", "npoints": 0})
        dtypes = ["int64"] + ["float64"] * (len(KEYS) - 1)
        labels = ["#Pt No", MOTOR, *(label for _, label in COUNTERS), "dt"]
        self.streams = [self.scan.create_stream(Stream.make_definition(label, dtype, ()))
                        for label, dtype in zip(labels, dtypes)]
        self.scan.prepare()
        self.scan.start()

    def send(self, data: dict[str, Any]) -> None:
        for stream, key in zip(self.streams, KEYS):
            stream.send(data[key])

    def close(self) -> None:
        self.scan.stop()
        self.scan.info["end_reason"] = "SUCCESS"
        self.scan.close()


def pace(rate: float, t0: float, i: int) -> None:
    """Sleep until point ``i`` of a ``rate`` Hz sequence started at ``t0`` (perf_counter)."""
    delay = t0 + i / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    a = np.asarray(values)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max())


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """An aligned text table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.rjust(w) if j else c.ljust(w)  # noqa: E731
                                       for j, (c, w) in enumerate(zip(r, widths))) + " |"
    print(f"\n{title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 1) + ":" if j else "-" * (w + 2)
                         for j, w in enumerate(widths)) + "|")
    for r in cells[1:]:
        print(line(r))
    print(flush=True)


def bench_main(run, doc: str | None, rounds: bool = False) -> None:
    """Command line of one benchmark module: ``--quick`` (and ``--rounds N``)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="smaller, faster runs")
    if rounds:
        parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    run(**vars(parser.parse_args()))
