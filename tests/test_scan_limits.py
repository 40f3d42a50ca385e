"""Scan limits (absurd declarations refused), byte-bounded reads, index gaps and overlaps."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from sardana_redis.following.limits import (
    ENTRY_OVERHEAD,
    MIB,
    ScanLimits,
    point_bytes,
    rows_per_read,
)
from sardana_redis.following.scan_rows import ScanRows, index_problems
from sardana_redis.scan_model import ScanRejected, StreamShape

SCALAR = StreamShape("float64", ())


def test_rows_per_read_is_bounded_in_bytes():
    frame = StreamShape("uint32", (1024, 1024))  # 4 MB a point
    assert point_bytes(frame) == 4 * MIB
    assert rows_per_read({"frame": frame, "ct": SCALAR}, 64 * MIB) == 15
    scalars = {f"ct{i}": SCALAR for i in range(10)}
    assert rows_per_read(scalars, 64 * MIB) == 64 * MIB // (10 * (8 + ENTRY_OVERHEAD))
    assert rows_per_read({"huge": StreamShape("float64", (8192, 8192))}, 64 * MIB) == 1
    assert rows_per_read({"spectrum": StreamShape("float32", (-1,))}, 1 * MIB) == \
        MIB // (4096 + ENTRY_OVERHEAD)
    assert rows_per_read({"js": StreamShape("json", ())}, 1 * MIB) == MIB // (4096 + ENTRY_OVERHEAD)
    assert rows_per_read({}, MIB) >= 1


@pytest.mark.parametrize("shapes, info, reason", [
    ({f"s{i}": SCALAR for i in range(5000)}, None, "5000 streams declared"),
    ({"img": StreamShape("float64", (10**9, 10**9))}, None, "more than the limit"),
    ({"spectrum": StreamShape("float64", (10**9,))}, None, "8000000000 bytes"),
    ({"img": StreamShape("uint8", (-5, 10))}, None, "negative dimension"),
    ({"cube": StreamShape("uint8", (1, 1, 1, 1, 1))}, None, "5 dimensions"),
    ({"x": StreamShape("not-a-dtype", ())}, None, "unknown dtype"),
    ({"ct": SCALAR}, {"npoints": 10**12}, "1000000000000 points declared"),
])
def test_absurd_declarations_are_refused(shapes, info, reason):
    with pytest.raises(ScanRejected, match=reason):
        ScanLimits().check(shapes, info)


def test_sensible_declarations_pass_and_limits_are_configurable():
    shapes = {"ct": SCALAR, "img": StreamShape("uint16", (2048, 2048)),
              "var": StreamShape("float32", (-1,)), "js": StreamShape("json", ())}
    ScanLimits().check(shapes, {"npoints": 1000})
    with pytest.raises(ScanRejected, match="more than the limit of 3"):
        ScanLimits(max_streams=3).check(shapes)
    with pytest.raises(ScanRejected, match="img"):
        ScanLimits(max_point_bytes=MIB).check(shapes)
    with pytest.raises(ValueError):
        ScanLimits(read_budget=0)


def test_index_problems():
    assert index_problems([(0, 5), (5, 5)], 0) == []
    assert index_problems([(0, 5), (8, 2)], 0) == [("gap", 5, 7)]
    assert index_problems([(0, 5), (3, 4)], 0) == [("overlap", 3, 4)]
    assert index_problems([(2, 5), (7, 1)], 4) == []  # the first entry begins before start
    assert index_problems([(6, 1)], 4) == [("gap", 4, 5)]


def _scan(url, streams):
    """A blissdata scan with ``streams`` (name -> (dtype, shape)), started."""
    store = DataStore(url)
    scan = store.create_scan({"name": "t", "number": 1, "data_policy": "no_policy",
                              "session": "limits"}, info={})
    made = {name: scan.create_stream(Stream.make_definition(name, dtype, shape))
            for name, (dtype, shape) in streams.items()}
    scan.prepare()
    scan.start()
    return store, scan, made


def _seal(scan, made):
    for stream in made.values():
        stream.seal()
    scan.stop()
    scan.close()


def test_batches_stay_within_the_read_budget(redis_url):
    store, scan, made = _scan(redis_url, {"frame": ("uint8", (256, 256)), "ct": ("float64", ())})
    made["frame"].send(np.ones((40, 256, 256), dtype=np.uint8))  # one entry of 40 frames
    made["ct"].send(np.arange(40.0))
    _seal(scan, made)
    rows = ScanRows(store.load_scan(scan.key), ["frame", "ct"], budget=MIB, poll=0.01)
    sizes = [len(b["frame"]) for b in rows.batches() if b]
    assert rows.rows_per_read == MIB // (65536 + 8 + 2 * ENTRY_OVERHEAD) == 15
    assert sizes == [15, 15, 10]
    assert rows.rows_read == 40


def test_gaps_and_overlaps_are_reported_and_rows_stay_aligned(redis_url, caplog):
    store, scan, made = _scan(redis_url, {"a": ("float64", ()), "b": ("int64", ())})
    made["a"].send(np.arange(5.0))
    made["a"].event_stream._write_index = 8  # indexes 5 to 7 never published
    made["a"].send(np.arange(8.0, 10.0))
    made["b"].send(np.arange(6))
    made["b"].event_stream._write_index = 4  # indexes 4 and 5 published twice
    made["b"].send(np.arange(40, 46))
    _seal(scan, made)
    rows = ScanRows(store.load_scan(scan.key), ["a", "b"], poll=0.01)
    with caplog.at_level(logging.ERROR):
        batches = [b for b in rows.batches() if b]
    a = np.concatenate([b["a"] for b in batches])
    b = np.concatenate([b["b"] for b in batches])
    np.testing.assert_array_equal(a, [0, 1, 2, 3, 4, np.nan, np.nan, np.nan, 8, 9])
    np.testing.assert_array_equal(b, [0, 1, 2, 3, 4, 5, 42, 43, 44, 45])
    text = caplog.text
    assert f"Scan {scan.key} #1: stream 'a' has a gap at indexes 5 to 7" in text
    assert f"Scan {scan.key} #1: stream 'b' has an overlap at indexes 4 to 5: first values kept" \
        in text


def test_a_stream_past_max_points_is_refused_while_read(redis_url):
    store, scan, made = _scan(redis_url, {"a": ("float64", ())})
    made["a"].send(np.arange(5.0))
    made["a"].event_stream._write_index = 10**9  # an index far ahead: not 1e9 rows of NaN
    made["a"].send(np.arange(2.0))
    _seal(scan, made)
    rows = ScanRows(store.load_scan(scan.key), ["a"], poll=0.01, max_points=10**6)
    with pytest.raises(ScanRejected, match="reached 1000000002 points"):
        list(rows.batches())
