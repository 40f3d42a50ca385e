"""Turning the values Sardana records for one column into one array per batch.

Sardana hands values as they come: ints in float columns, ``None`` for missing
values, NaN placeholders in continuous scans, numpy arrays for 1D/2D channels
(sometimes of another dtype), and strings for referenced values. Streams are
strictly typed, so each batch is converted to the column's dtype and shape;
a value that cannot be converted becomes a placeholder (NaN for floats, 0 for
integers and booleans, as Sardana's NXscanH5_FileRecorder writes) and is
counted so the caller can warn once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardana_redis.scan_model import Column


def stream_dtype(column: Column) -> str:
    """The dtype a column is published with: ``"json"`` for strings and references."""
    if column.value_ref:
        return "json"
    try:
        dtype = np.dtype(column.dtype)
    except TypeError:
        return "json"
    return dtype.name if dtype.kind in "biufc" else "json"


@dataclass
class ColumnConverter:
    """Converts batches of one column's raw values, counting placeholders."""

    column: Column
    placeholders: int = 0

    def __post_init__(self) -> None:
        self.dtype = stream_dtype(self.column)
        self.shape = self.column.shape
        if self.dtype != "json":
            np_dtype = np.dtype(self.dtype)
            fill = np.nan if np_dtype.kind in "fc" else 0
            self._fill = np.full(self.shape, fill, dtype=np_dtype)

    def convert(self, values: Sequence[Any]) -> np.ndarray | list:
        """One batch ready for ``stream.send``."""
        if self.dtype == "json":
            if self.column.value_ref:
                values = [_single_reference(v) for v in values]
            return [_json_value(v) for v in values]
        batch = self._cast(values)
        if batch is not None and batch.shape[1:] == self.shape:
            return batch
        return np.stack([self._one(v) for v in values])

    def _cast(self, value: Any) -> np.ndarray | None:
        """``value`` as the column dtype, or None when it does not convert exactly."""
        if self._fill.dtype.kind == "f":  # fast path: ints, floats and None (NaN) convert
            try:
                return np.asarray(value, dtype=self._fill.dtype)
            except (TypeError, ValueError):
                return None
        try:
            raw = np.asarray(value)
        except ValueError:  # ragged
            return None
        if raw.dtype.kind not in "biufc":
            return None
        if self._fill.dtype.kind in "biu" and raw.dtype.kind in "fc" and not np.isfinite(raw).all():
            return None  # NaN has no integer value
        return raw.astype(self._fill.dtype, copy=False)

    def _one(self, value: Any) -> np.ndarray:
        point = self._cast(value)
        if point is not None and point.shape == self.shape:
            return point
        self.placeholders += 1
        return self._fill


def _single_reference(value: Any) -> Any:
    """Sardana hands a point's reference wrapped in one-item sequences: unwrap it."""
    while isinstance(value, (list, tuple, np.ndarray)) and len(value) == 1:
        value = value[0]
    return value


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
