"""What the live viewer draws, and the data it keeps and sends (pure: no Redis, no server).

- :func:`panel_views`: the panels of a scan, as ``sardana-redis plot`` chooses them
  (:func:`sardana_redis.scan_plot.choose_panels`), described for the page;
- :class:`Series`: the points of a scan's scalar streams, aligned by point index, kept
  within a fixed number of points per stream by halving them (every other point) when
  full, and sent to each client as what it has not seen yet;
- :func:`decimate_frame` / :func:`decimate_row`: a frame or a spectrum reduced on the
  server (block means) so that the browser never receives full frames;
- :class:`Waterfall`: the last spectra, decimated, numbered.

Everything here is bounded whatever a scan declares.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected
from sardana_redis.scan_plot import DRAWN_KINDS, MAX_PANELS, Panel, choose_panels

#: Points kept per scalar stream; beyond, every other point is dropped (the stride doubles).
MAX_SERIES_POINTS = 100_000
#: Largest side of a frame sent to the browser (the frame is block-averaged down to it).
MAX_FRAME_SIDE = 256
#: Values of a spectrum sent to the browser (block-averaged down to it).
MAX_SPECTRUM_VALUES = 2048
#: Values of one waterfall row, and rows kept.
MAX_WATERFALL_VALUES = 512
WATERFALL_ROWS = 100
#: Bytes of one 1D or 2D point the viewer reads from Redis; bigger ones are not drawn.
MAX_FRAME_BYTES = 64 << 20


@dataclass(frozen=True)
class PanelView:
    """One panel of the page: what :class:`~sardana_redis.scan_plot.Panel` says, with labels."""

    panel: Panel
    labels: Mapping[str, str]  #: stream -> label shown (Sardana's column label, else the name)

    def describe(self) -> dict[str, Any]:
        p = self.panel
        return {"kind": p.kind, "streams": list(p.streams), "x": p.x, "y": p.y,
                "grid": list(p.grid) if p.grid else None,
                "labels": {s: self.labels.get(s, s) for s in (*p.streams, p.x, p.y) if s}}


def stream_labels(info: Any) -> dict[str, str]:
    """Stream -> label from our scan_info (Sardana's column labels); empty for a foreign
    or malformed scan_info (the stream names are shown then)."""
    try:
        scan = PublishedScan.parse(info)
    except ScanRejected:
        return {}
    return {c.stream: c.label for c in scan.columns}


def panel_views(info: Any, shapes: Mapping[str, tuple[int, ...]]
                ) -> tuple[list[PanelView], dict[str, str]]:
    """The panels of a scan (at most :data:`~sardana_redis.scan_plot.MAX_PANELS`), and the
    streams left out (stream: why)."""
    info = info if isinstance(info, Mapping) else {}
    labels = stream_labels(info)
    panels = choose_panels(info, shapes)
    left_out = {p.streams[0]: f"more than {MAX_PANELS} panels" for p in panels[MAX_PANELS:]}
    return [PanelView(p, labels) for p in panels[:MAX_PANELS]], left_out


def json_floats(values: np.ndarray) -> list[float | None]:
    """Values as a JSON-safe list: NaN and infinities become None."""
    values = np.asarray(values, dtype=float).ravel()
    out = values.tolist()
    for i in np.flatnonzero(~np.isfinite(values)):
        out[i] = None
    return out


class Series:
    """The points of some scalar streams, aligned by point index, at most ``capacity`` per
    stream: when a stream holds more, every stream drops every other point (the kept points
    are those whose index is a multiple of :attr:`stride`) and :attr:`generation` grows, so
    that clients know to start again. Kept as float64 arrays (NaN: a missing point). Not
    thread-safe: the caller holds a lock."""

    def __init__(self, names: Sequence[str], capacity: int = MAX_SERIES_POINTS):
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1
        self.generation = 0
        self._data: dict[str, np.ndarray] = {n: np.empty(0) for n in names}
        self._length: dict[str, int] = {n: 0 for n in names}
        self.received: dict[str, int] = {n: 0 for n in names}  #: points read of each stream

    def append(self, name: str, index: int, values: Any) -> None:
        """Points ``index`` to ``index + len(values) - 1`` of stream ``name`` (what was
        received before them is not asked again; a gap is filled with NaN). Raises
        ValueError or TypeError for values that are not numbers."""
        values = np.asarray(values, dtype=float).ravel()
        if index > self.received[name]:  # points expired before they were read
            self._extend(name, self.received[name], np.full(index - self.received[name], np.nan))
        elif index < self.received[name]:
            values = values[self.received[name] - index:]
            index = self.received[name]
        self._extend(name, index, values)
        while self._length[name] > self.capacity:
            self.stride *= 2
            self.generation += 1
            for other in self._data:
                kept = self.array(other)[::2].copy()
                self._data[other], self._length[other] = kept, len(kept)

    def _extend(self, name: str, index: int, values: np.ndarray) -> None:
        kept = values[(-index) % self.stride::self.stride]
        data, length = self._data[name], self._length[name]
        if length + len(kept) > len(data):
            grown = np.empty(max(2 * len(data), length + len(kept), 64))
            grown[:length] = data[:length]
            self._data[name] = data = grown
        data[length:length + len(kept)] = kept
        self._length[name] = length + len(kept)
        self.received[name] = index + len(values)

    def array(self, name: str) -> np.ndarray:
        """The kept points of a stream (a view: copy it to keep it)."""
        return self._data[name][:self._length[name]]

    def lengths(self) -> dict[str, int]:
        return dict(self._length)

    @property
    def values(self) -> dict[str, list[float | None]]:
        """Every kept point of each stream, JSON-safe."""
        return {n: json_floats(self.array(n)) for n in self._data}

    @property
    def points(self) -> int:
        """Points read of the longest stream."""
        return max(self.received.values(), default=0)

    def since(self, generation: int, sent: Mapping[str, int]) -> tuple[bool, dict[str, list]]:
        """(reset, new values of each stream, JSON-safe) for a client that received ``sent``
        values of each stream in ``generation`` (reset: everything is sent again)."""
        reset = generation != self.generation
        return reset, {n: json_floats(self.array(n)[0 if reset else sent.get(n, 0):])
                       for n in self._data}


def _block_mean(data: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """``data`` reduced by integer ``factors`` along each axis (means of the blocks; the
    last incomplete block of an axis is dropped)."""
    cut = tuple(slice(0, (n // f) * f) for n, f in zip(data.shape, factors, strict=True))
    data = data[cut]
    shape = [d for n, f in zip(data.shape, factors, strict=True) for d in (n // f, f)]
    return data.reshape(shape).mean(axis=tuple(range(1, 2 * data.ndim, 2)))


def _finite(data: Any) -> np.ndarray:
    data = np.asarray(data)
    if data.dtype.kind not in DRAWN_KINDS:
        raise ValueError(f"dtype {data.dtype} cannot be drawn")
    return data.astype(float)


def decimate_frame(frame: Any, max_side: int = MAX_FRAME_SIDE) -> dict[str, Any]:
    """A 2D frame reduced to at most ``max_side`` pixels on each side (block means), scaled
    to bytes between its minimum and maximum: {shape, source_shape, min, max, data (base64
    of the rows of uint8)}."""
    data = _finite(frame)
    if data.ndim != 2:
        raise ValueError(f"a frame has 2 dimensions, not {data.ndim}")
    factors = tuple(max(1, math.ceil(n / max_side)) for n in data.shape)
    small = _block_mean(data, factors) if factors != (1, 1) else data
    finite = small[np.isfinite(small)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scaled = np.zeros(small.shape) if high <= low else (small - low) / (high - low) * 255
    pixels = np.nan_to_num(scaled, nan=0.0).clip(0, 255).astype(np.uint8)
    return {"shape": list(pixels.shape), "source_shape": list(data.shape), "min": low,
            "max": high, "data": base64.b64encode(pixels.tobytes()).decode()}


def decimate_row(row: Any, max_values: int) -> list[float | None]:
    """A spectrum reduced to at most ``max_values`` values (block means)."""
    data = _finite(row).ravel()
    factor = max(1, math.ceil(len(data) / max_values))
    return json_floats(_block_mean(data, (factor,)) if factor > 1 else data)


class Waterfall:
    """The last :data:`WATERFALL_ROWS` spectra seen, decimated, each with its point index
    and a sequence number (clients ask for the rows after the last one they have)."""

    def __init__(self, rows: int = WATERFALL_ROWS, max_values: int = MAX_WATERFALL_VALUES):
        self.rows: deque[tuple[int, int, list]] = deque(maxlen=rows)  #: (seq, point, values)
        self.max_values = max_values
        self.seq = 0

    def add(self, point: int, spectrum: Any) -> None:
        self.seq += 1
        self.rows.append((self.seq, point, decimate_row(spectrum, self.max_values)))

    def since(self, seq: int) -> list[list]:
        return [[point, values] for s, point, values in self.rows if s > seq]


def send_delay(last_sent: float, now: float, period: float) -> float:
    """Seconds a client waits before its next batch: at most one batch every ``period``."""
    return max(0.0, last_sent + period - now)
