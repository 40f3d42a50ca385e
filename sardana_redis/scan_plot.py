"""``sardana-redis plot``: a PNG of any blissdata scan, with the plots Flint would show.

:func:`choose_panels` picks what to draw from ``scan_info`` and the streams' shapes
(pure); :func:`plot` reads the streams and draws them with matplotlib:

- the scalars: the first usable plot of ``scan_info["plots"]`` (curves against their
  x axis, or a mesh's scatter, drawn as an image when the grid is regular and
  complete), else what Flint infers: the first counter against the first axis;
- each 1D channel (the declared "1d-plot"s, else every one): its last spectrum, or a
  waterfall of the spectra;
- each 2D channel: its last frame.

Data in Redis is untrusted: what is read for one panel is bounded (:data:`MAX_VALUES`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sardana_redis.browse import untrusted_mappings

logger = logging.getLogger(__name__)

SPECTRA_MODES = ("last", "waterfall")
#: panels in one PNG (scalars, spectra, images); the others are listed as not drawn
MAX_PANELS = 6
#: curves in one panel (each read whole, up to MAX_VALUES points)
MAX_CURVES = 16
#: values read for one panel: points of one curve, pixels of a frame, waterfall values
MAX_VALUES = 1 << 24


@dataclass(frozen=True)
class Panel:
    """One panel to draw."""

    kind: str  #: "curves", "mesh", "spectrum" or "image"
    streams: tuple[str, ...]  #: the y streams (curves), the value (mesh), the 1D/2D stream
    x: str | None = None  #: x axis stream (curves, mesh, spectrum); None: the index
    y: str | None = None  #: y axis stream of a mesh
    grid: tuple[int, int] | None = None  #: a mesh's declared points along x and y


@dataclass(frozen=True)
class DrawnPanel:
    """What was drawn in one panel, read back from its matplotlib artists."""

    title: str
    xlabel: str
    ylabel: str
    streams: tuple[str, ...]  #: the streams this panel plots
    axes: tuple[str, ...]  #: the axis streams they are plotted against
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  #: label: x, y
    images: tuple[np.ndarray, ...] = ()
    scatters: tuple[np.ndarray, ...] = ()  #: the (x, y) positions of each scatter


@dataclass(frozen=True)
class PlotResult:
    panels: list[DrawnPanel]
    not_drawn: list[str]  #: "<stream>: why" for what could not be drawn

    @property
    def streams(self) -> list[str]:
        """The streams drawn, each once, in panel order."""
        return list(dict.fromkeys(s for panel in self.panels for s in panel.streams))


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _channel(info: Mapping, name: str) -> Mapping:
    return _mapping(_mapping(info.get("channels")).get(name))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _declared_scalars(info: Mapping, scalars: list[str]) -> Panel | None:
    """The first curve or scatter plot of ``scan_info["plots"]`` naming scalar streams."""
    for plot in untrusted_mappings(info.get("plots")):
        items = untrusted_mappings(plot.get("items"))
        if plot.get("kind") == "scatter-plot":
            for item in items:
                if all(item.get(k) in scalars for k in ("x", "y", "value")):
                    return _mesh(info, item["x"], item["y"], item["value"])
        elif plot.get("kind") == "curve-plot":
            ys = list(dict.fromkeys(i["y"] for i in items if i.get("y") in scalars))[:MAX_CURVES]
            if ys:
                x = next((i["x"] for i in items if i.get("x") in scalars), None)
                return Panel("curves", tuple(ys), x=x)
    return None


def _mesh(info: Mapping, x: str, y: str, value: str) -> Panel:
    nx, ny = (_int(_channel(info, axis).get("axis_points")) for axis in (x, y))
    return Panel("mesh", (value,), x=x, y=y, grid=(nx, ny) if nx and ny else None)


def _inferred_scalars(info: Mapping, scalars: list[str]) -> Panel | None:
    """What Flint infers without ``plots``: axes are the channels of devices that
    trigger others; the first other channel not in seconds is plotted against the
    first axis (both axes of a mesh, known by their ``axis_id``, as a scatter)."""
    axes: list[str] = []
    counters: list[str] = []
    for device in _mapping(info.get("devices")).values():
        device = _mapping(device)
        channels = device.get("channels")
        channels = [c for c in channels if c in scalars] if isinstance(channels, list) else []
        (axes if device.get("triggered_devices") else counters).extend(channels)
    if not axes and not counters:  # no device tree: every scalar against the index
        counters = list(scalars)
    counters = [c for c in counters if c not in axes]
    quantities = [c for c in counters if _channel(info, c).get("unit") != "s"] or counters
    if not quantities:
        return None
    by_id = {axis_id: a for a in axes
             if isinstance(axis_id := _channel(info, a).get("axis_id"), int)}
    if 0 in by_id and 1 in by_id:
        return _mesh(info, by_id[0], by_id[1], quantities[0])
    return Panel("curves", (quantities[0],), x=axes[0] if axes else None)


def choose_panels(info: Mapping, shapes: Mapping[str, tuple[int, ...]]) -> list[Panel]:
    """The panels of a scan, from its ``scan_info`` and its numeric streams' shapes."""
    scalars = [name for name, shape in shapes.items() if shape == ()]
    panels: list[Panel] = []
    scalar = _declared_scalars(info, scalars) or _inferred_scalars(info, scalars)
    if scalar is not None:
        panels.append(scalar)
    spectra = [name for name, shape in shapes.items() if len(shape) == 1]
    declared = []
    for plot in untrusted_mappings(info.get("plots")):
        if plot.get("kind") == "1d-plot":
            x = plot.get("x")
            x = x if x in spectra else None
            declared += [Panel("spectrum", (i["y"],), x=x)
                         for i in untrusted_mappings(plot.get("items")) if i.get("y") in spectra]
    panels += declared or [Panel("spectrum", (name,)) for name in spectra]
    panels += [Panel("image", (name,)) for name, shape in shapes.items() if len(shape) == 2]
    return panels


#: numpy dtype kinds drawn: booleans, integers, floats (not complex, text or objects).
DRAWN_KINDS = "biuf"


def numeric_shapes(scan: Any) -> dict[str, tuple[int, ...]]:
    """The point shape of every stream that can be drawn: real numbers (booleans, integers,
    floats); JSON, text and complex streams are left out (logged)."""
    shapes = {}
    for name, stream in scan.streams.items():
        try:
            if getattr(stream, "kind", "") == "json":
                continue
            kind = np.dtype(stream.dtype).kind
            if kind not in DRAWN_KINDS:
                logger.info("stream %s left out: dtype %s cannot be drawn", name, stream.dtype)
                continue
            shapes[name] = tuple(int(n) for n in stream.shape)
        except Exception as exc:  # noqa: BLE001 - a stream whose plugin is missing
            logger.info("stream %s left out: %s", name, exc)
    return shapes


def _last_rows(stream: Any, rows: int) -> tuple[int, np.ndarray]:
    """(index of the first row, the last ``rows`` values) of a stream, by positive
    indexes (blissdata refuses negative ones before the stream is sealed)."""
    length = len(stream)
    start = max(0, length - rows)
    return start, np.asarray(stream[start:length])


def _scalars(scan: Any, names: list[str | None]) -> list[np.ndarray | None]:
    """Values of scalar streams (the first :data:`MAX_VALUES` points), cut to a common length."""
    arrays = [np.asarray(scan.streams[n][:min(len(scan.streams[n]), MAX_VALUES)])
              if n else None for n in names]
    length = min((len(a) for a in arrays if a is not None), default=0)
    return [a[:length] if a is not None else None for a in arrays]


def regular_grid(x: np.ndarray, y: np.ndarray,
          grid: tuple[int, int] | None) -> tuple[int, int, bool] | None:
    """(points along x, along y, x is the fast axis) when the positions fill a regular grid."""
    def distinct(v: np.ndarray) -> int:
        span = float(np.ptp(v)) if len(v) else 0.0
        return len(np.unique(np.round((v - v.min()) / span * 1e6))) if span else 1

    nx, ny = grid if grid else (distinct(x), distinct(y))
    if nx * ny != len(x) or nx < 2 or ny < 2:
        return None
    for fast_x in (True, False):
        shape = (ny, nx) if fast_x else (nx, ny)
        gx, gy = x.reshape(*shape), y.reshape(*shape)
        along, across = (gx, gy) if fast_x else (gy, gx)
        # along the fast axis: each row repeats the first; across: each row is constant
        tol_a = 0.25 * float(np.ptp(along)) / max(along.shape[1] - 1, 1)
        tol_c = 0.25 * float(np.ptp(across)) / max(across.shape[0] - 1, 1)
        if np.all(np.abs(along - along[:1]) <= tol_a) and \
                np.all(np.abs(across - across[:, :1]) <= tol_c):
            return nx, ny, fast_x
    return None


def _draw_mesh(ax: Any, fig: Any, scan: Any, panel: Panel) -> None:
    x, y, value = _scalars(scan, [panel.x, panel.y, panel.streams[0]])
    if x is None or y is None or value is None:
        raise ValueError(f"mesh panel of {panel.streams[0]} without its x or y stream")
    grid = regular_grid(x, y, panel.grid) if len(x) else None
    if grid is None:
        artist = ax.scatter(x, y, c=value, marker="s")
    else:
        nx, ny, fast_x = grid
        image = value.reshape(ny, nx) if fast_x else value.reshape(nx, ny).T
        gx = x.reshape(ny, nx)[0] if fast_x else x.reshape(nx, ny)[:, 0]
        gy = y.reshape(ny, nx)[:, 0] if fast_x else y.reshape(nx, ny)[0]
        dx, dy = (gx[-1] - gx[0]) / (nx - 1) / 2, (gy[-1] - gy[0]) / (ny - 1) / 2
        artist = ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest",
                           extent=(gx[0] - dx, gx[-1] + dx, gy[0] - dy, gy[-1] + dy))
    fig.colorbar(artist, ax=ax, label=panel.streams[0])
    ax.set_xlabel(panel.x)
    ax.set_ylabel(panel.y)
    ax.set_title(f"{panel.streams[0]} ({'image' if grid else 'scatter'})")


def _draw_curves(ax: Any, scan: Any, panel: Panel) -> None:
    x, *named = _scalars(scan, [panel.x, *panel.streams])
    ys = [y for y in named if y is not None]  # all of them: each y stream is named
    for name, y in zip(panel.streams, ys, strict=True):
        ax.plot(x if x is not None else np.arange(len(y)), y, marker=".", label=name)
    ax.set_xlabel(panel.x or "point")
    ax.set_ylabel(", ".join(panel.streams))
    ax.legend()


def _draw_spectrum(ax: Any, fig: Any, scan: Any, panel: Panel, spectra: str) -> None:
    name = panel.streams[0]
    stream = scan.streams[name]
    width = max(int(np.prod(stream.shape)), 1)
    if spectra == "waterfall":
        first, rows = _last_rows(stream, max(1, MAX_VALUES // width))
        image = ax.imshow(rows, origin="lower", aspect="auto", interpolation="nearest",
                          extent=(0, width, first, first + len(rows)))
        fig.colorbar(image, ax=ax, label=name)
        ax.set_xlabel("index")
        ax.set_ylabel("point")
        ax.set_title(f"{name} (waterfall)")
        return
    if width > MAX_VALUES:
        raise ValueError(f"spectra of {width} values: more than {MAX_VALUES}")
    index, last = _last_rows(stream, 1)
    if not len(last):
        raise ValueError("no spectrum yet")
    x = _last_rows(scan.streams[panel.x], 1)[1][-1] if panel.x else np.arange(len(last[-1]))
    ax.plot(x, last[-1], label=name)
    ax.set_xlabel(panel.x or "index")
    ax.set_ylabel(name)
    ax.set_title(f"{name} (point {index})")


def _draw_image(ax: Any, fig: Any, scan: Any, panel: Panel) -> None:
    name = panel.streams[0]
    stream = scan.streams[name]
    if int(np.prod(stream.shape)) > MAX_VALUES:
        raise ValueError(f"frames of {tuple(stream.shape)} pixels: more than {MAX_VALUES}")
    index, last = _last_rows(stream, 1)
    if not len(last):
        raise ValueError("no frame yet")
    image = ax.imshow(last[-1], origin="lower", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=name)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    ax.set_title(f"{name} (point {index})")


def _describe(ax: Any, panel: Panel) -> DrawnPanel:
    return DrawnPanel(
        title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(),
        streams=panel.streams, axes=tuple(s for s in (panel.x, panel.y) if s),
        curves={line.get_label(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
                for line in ax.lines},
        images=tuple(np.asarray(image.get_array()) for image in ax.images),
        scatters=tuple(np.asarray(c.get_offsets()) for c in ax.collections))


def plot(scan: Any, output: Path, spectra: str = "last") -> PlotResult:
    """Draw a scan's panels (:func:`choose_panels`) into the PNG ``output``.

    ``spectra``: ``"last"`` draws the last spectrum of each 1D channel, ``"waterfall"``
    all of them (the last ones, up to :data:`MAX_VALUES` values) as an image."""
    if spectra not in SPECTRA_MODES:
        raise ValueError(f"spectra must be one of {SPECTRA_MODES}, not {spectra!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = _mapping(scan.info)
    panels = choose_panels(info, numeric_shapes(scan))
    not_drawn = [f"{p.streams[0]}: more than {MAX_PANELS} panels" for p in panels[MAX_PANELS:]]
    panels = panels[:MAX_PANELS]
    if not panels:
        raise ValueError(f"scan {scan.key} has no numeric stream to plot")
    # names come from Redis: "$...$" is not parsed as math (a parse error at savefig), and
    # characters the font lacks or names too long to fit are not one warning each
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        warnings.filterwarnings("ignore", "Tight layout not applied", UserWarning)
        drawn = _draw(plt, scan, info, panels, output, spectra, not_drawn)
    return PlotResult(drawn, not_drawn)


def _draw(plt: Any, scan: Any, info: Mapping, panels: list[Panel], output: Path, spectra: str,
          not_drawn: list[str]) -> list[DrawnPanel]:
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1 + 3.5 * len(panels)), squeeze=False)
    drawn = []
    try:
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            try:
                if panel.kind == "curves":
                    _draw_curves(ax, scan, panel)
                elif panel.kind == "mesh":
                    _draw_mesh(ax, fig, scan, panel)
                elif panel.kind == "spectrum":
                    _draw_spectrum(ax, fig, scan, panel, spectra)
                else:
                    _draw_image(ax, fig, scan, panel)
            except Exception as exc:  # noqa: BLE001 - trimmed, unreadable or odd data
                not_drawn.append(f"{panel.streams[0]}: {type(exc).__name__}: {exc}")
                ax.set_axis_off()
                ax.set_title(f"{panel.streams[0]}: not drawn")
                continue
            drawn.append(_describe(ax, panel))
        fig.suptitle(str(info.get("title") or f"{scan.name} #{scan.number}"))
        fig.tight_layout()
        fig.savefig(output, dpi=100)
    finally:
        plt.close(fig)
    return drawn
