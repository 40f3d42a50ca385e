"""The pure parts of following a scan's rows: stream order and shapes, gaps and overlaps in
stream indexes, the placeholders of missing points (the reading itself needs Redis: see
tests/reliability/test_hostile_input.py and the writer service tests)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sardana_redis.following.scan_rows import (
    _concat,
    _filler,
    _runs,
    index_problems,
    published_order,
    stream_shapes,
)
from sardana_redis.scan_model import ScanRejected, StreamShape


def scan_with(streams: dict, published: list[str] | None = None) -> SimpleNamespace:
    """What these functions read of a blissdata scan: ``streams`` and the scan document's
    ``data_streams`` (publication order)."""
    model = SimpleNamespace(data_streams={name: {} for name in published}) if published else None
    return SimpleNamespace(streams=streams, _model=model)


def array_stream(dtype: str, shape: tuple) -> SimpleNamespace:
    return SimpleNamespace(kind="array", dtype=np.dtype(dtype), shape=shape)


def test_published_order_comes_from_the_scan_document():
    streams = {name: None for name in ("dt", "mot01", "#Pt No", "late")}
    assert published_order(scan_with(streams, ["#Pt No", "mot01", "gone", "dt"])) == \
        ["#Pt No", "mot01", "dt", "late"]
    assert published_order(scan_with(streams)) == list(streams)  # no document: as given


def test_stream_shapes():
    scan = scan_with({"ct01": array_stream("float32", ()), "#Pt No": array_stream("int64", ()),
                      "twod01": array_stream("uint16", [2, np.int64(3)]),
                      "ref": SimpleNamespace(kind="json")}, ["#Pt No", "ct01", "twod01", "ref"])
    assert stream_shapes(scan) == {"#Pt No": StreamShape("int64", ()),
                                   "ct01": StreamShape("float32", ()),
                                   "twod01": StreamShape("uint16", (2, 3)),
                                   "ref": StreamShape("json", ())}
    hostile = scan_with({"bad": array_stream("float64", ["many"])})
    with pytest.raises(ScanRejected, match="stream 'bad': malformed shape"):
        stream_shapes(hostile)


@pytest.mark.parametrize(("spans", "start", "problems"), [
    ([(0, 5), (5, 5)], 0, []),
    ([(0, 3), (5, 2)], 0, [("gap", 3, 4)]),
    ([(2, 3)], 0, [("gap", 0, 1)]),
    ([(0, 5), (3, 4)], 0, [("overlap", 3, 4)]),
    ([(0, 5), (3, 1)], 0, [("overlap", 3, 3)]),
    ([(0, 10), (10, 2)], 4, []),  # the first entry may begin before start
    ([(0, 4), (4, 0), (4, 2)], 0, []),  # an empty entry (a seal) overlaps nothing
    ([(0, 2), (1, 2), (6, 1)], 0, [("overlap", 1, 1), ("gap", 3, 5)]),
])
def test_index_problems(spans, start, problems):
    assert index_problems(spans, start) == problems


def test_fillers_are_nan_zero_or_none_like_their_stream():
    floats = _filler(np.zeros((1, 4), dtype=np.float32), 2)
    assert floats.shape == (2, 4) and floats.dtype == np.float32 and np.isnan(floats).all()
    ints = _filler(np.zeros(1, dtype=np.uint16), 3)
    assert ints.dtype == np.uint16 and ints.tolist() == [0, 0, 0]
    assert _filler(["h5file:///f::/d"], 2) == [None, None]


def test_contiguous_entries_are_decoded_together():
    entries = [SimpleNamespace(id=i, length=n) for i, n in ((0, 2), (2, 3), (7, 1), (8, 1))]
    assert [[e.id for e in run] for run in _runs(entries)] == [[0, 2], [7, 8]]
    assert _concat([np.arange(2), np.arange(3)]).tolist() == [0, 1, 0, 1, 2]
    assert _concat([["a"], ["b", None]]) == ["a", "b", None]
