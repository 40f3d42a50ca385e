"""Limits on what a scan may declare, and the byte budget of the writers' reads.

A scan's streams, dtypes and shapes come from Redis, which is untrusted input:
a writer refuses (:class:`~sardana_redis.scan_model.ScanRejected`) a scan that
declares more streams, or bigger points, than it is configured for, and reads
the others in batches of at most ``read_budget`` bytes (whatever the backlog),
so that its memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardana_redis.scan_model import ScanRejected, StreamShape

MIB = 1 << 20
#: Streams a scan may have (Sardana's biggest measurement groups hold a few hundred channels).
MAX_STREAMS = 4096
#: Bytes one point of one stream may have (Redis refuses bigger entries by default anyway:
#: ``proto-max-bulk-len`` is 512 MB): a 16k x 8k frame of float32 still fits.
MAX_POINT_BYTES = 512 * MIB
#: Points a stream may have (declared in ``scan_info.npoints``, or published): a
#: continuous scan of 1000 points a second for a day is 86.4 million.
MAX_POINTS = 100_000_000
#: Dimensions a point may have (scalars, spectra, images, stacks of images).
MAX_DIMS = 4
#: Bytes read from Redis at once, for all the streams of a scan together.
READ_BUDGET = 64 * MIB
#: Elements a variable dimension (-1) is assumed to hold, for the read budget.
VARIABLE_DIM = 1024
#: Bytes a JSON point is assumed to take, for the read budget.
JSON_POINT = 4096
#: Bytes of the Python objects of one Redis entry, counted per point in the read budget
#: (a publisher may send each point as its own entry).
ENTRY_OVERHEAD = 1024


def point_bytes(shape: StreamShape) -> int:
    """Bytes of one point of a stream (variable dimensions taken as ``VARIABLE_DIM``)."""
    if shape.dtype == "json":
        return JSON_POINT
    size = math.prod(VARIABLE_DIM if d == -1 else d for d in shape.shape)
    return max(1, size * np.dtype(shape.dtype).itemsize)


def rows_per_read(shapes: Mapping[str, StreamShape], budget: int = READ_BUDGET) -> int:
    """Rows read at once so that a batch of every stream stays within ``budget`` bytes,
    ``ENTRY_OVERHEAD`` included (at least one row: a single row is bounded by
    ``max_point_bytes`` per stream)."""
    row = sum(point_bytes(s) + ENTRY_OVERHEAD for s in shapes.values())
    return max(1, budget // max(1, row))


@dataclass(frozen=True)
class ScanLimits:
    """What a writer accepts of a scan's declaration, and how much it reads at once."""

    max_streams: int = MAX_STREAMS
    max_points: int = MAX_POINTS
    max_point_bytes: int = MAX_POINT_BYTES
    read_budget: int = READ_BUDGET

    def __post_init__(self) -> None:
        for name in ("max_streams", "max_points", "max_point_bytes", "read_budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")

    def check_count(self, count: int) -> None:
        """Refuse a scan with more than ``max_streams`` streams (before looking at them)."""
        if count > self.max_streams:
            raise ScanRejected(f"{count} streams declared, more than the limit of "
                               f"{self.max_streams} (--max-streams / max_streams)")

    def check(self, shapes: Mapping[str, StreamShape], info: Any = None) -> None:
        """Raise :class:`ScanRejected` for a scan whose declaration (its streams' shapes,
        its ``scan_info.npoints``) is absurd."""
        self.check_count(len(shapes))
        npoints = info.get("npoints") if isinstance(info, Mapping) else None
        if isinstance(npoints, (int, float)) and npoints > self.max_points:
            raise ScanRejected(f"{npoints} points declared, more than the limit of "
                               f"{self.max_points} (--max-points / max_points)")
        for name, shape in shapes.items():
            if shape.dtype == "json":
                continue
            try:
                np.dtype(shape.dtype)
            except (TypeError, ValueError):
                raise ScanRejected(f"stream {name!r}: unknown dtype {shape.dtype!r}") from None
            if len(shape.shape) > MAX_DIMS:
                raise ScanRejected(f"stream {name!r}: {len(shape.shape)} dimensions, more "
                                   f"than {MAX_DIMS}")
            bad = [d for d in shape.shape if d < -1]
            if bad:
                raise ScanRejected(f"stream {name!r}: negative dimension in shape {shape.shape}")
            fixed = math.prod(d for d in shape.shape if d != -1) * np.dtype(shape.dtype).itemsize
            if fixed > self.max_point_bytes:
                raise ScanRejected(
                    f"stream {name!r}: a point of shape {shape.shape} {shape.dtype} takes "
                    f"{fixed} bytes, more than the limit of {self.max_point_bytes} "
                    "(--max-point-size / max_point_size)")
