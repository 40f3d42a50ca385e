"""The blissdata ``scan_info`` of a scan, built from its :class:`ScanDescription`.

Pure functions: no Redis, no running Sardana. The result follows blissdata's
``ScanInfoDict`` schema (devices, channels, acquisition chain, Flint plots) and
keeps Sardana's own column descriptions under the ``sardana`` key.
"""

from __future__ import annotations

import enum
import math
import numbers
from importlib.metadata import version
from typing import Any

import numpy as np
import pydantic
from blissdata.schemas.scan_info import ScanInfoDict

from sardana_redis.scan_model import Column, ColumnKind, ScanDescription, ScanEnd

PUBLISHER = "sardana"
DATA_WRITER = "sardana_redis"
#: read from the installed distribution: importing sardana would pull in taurus
SARDANA_VERSION = version("sardana")
#: blissdata device names of the axes (moveables) and of the point number / time columns
AXIS_DEVICE = "axis"
TIMER_DEVICE = "timer"


class _ScanInfoModel(pydantic.BaseModel):
    # ScanInfoDict's DeviceDict has a numpy.ndarray field: pydantic needs
    # arbitrary types, which TypeAdapter(ScanInfoDict) can't be told.
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    scan_info: ScanInfoDict


def build_scan_info(desc: ScanDescription) -> dict[str, Any]:
    """The ``scan_info`` of a scan at creation time (JSON-safe)."""
    devices, chain = _device_tree(desc)
    info: dict[str, Any] = {
        "title": desc.title,
        "type": desc.scan_type,
        "scan_nb": desc.identity.number,
        "npoints": desc.npoints,
        "start_time": desc.start_time,
        "session_name": desc.identity.session,
        "user_name": desc.user,
        "data_policy": desc.identity.data_policy,
        "data_writer": DATA_WRITER,
        "publisher": PUBLISHER,
        "publisher_version": SARDANA_VERSION,
        "save": bool(desc.files),
        "devices": devices,
        "channels": {col.stream: _channel_info(desc, col) for col in desc.columns},
        "acquisition_chain": {chain["top_master"]: chain},
        "positioners": _positioners(desc),
        "sardana": json_safe({
            "columns": [
                {"name": c.key, "label": c.label, "dtype": c.dtype, "shape": c.shape,
                 **c.metadata, "stream": c.stream, "dataset": c.dataset}
                for c in desc.columns
            ],
            "ref_moveables": [c.key for c in desc.axes],
            "requested_files": [{"path": f.path, "format": f.format} for f in desc.files],
            "scan_dir": desc.scan_dir,
            "mesh_shape": desc.mesh_shape,
            **desc.extra,
        }) | ({"custom_data": [c.to_json() for c in desc.custom_data]} if desc.custom_data else {}),
    }
    plots = build_plots(desc)
    if plots:  # an empty list would keep Flint from inferring its default plots
        info["plots"] = plots
    count_time = _finite(desc.count_time)
    if count_time is not None:
        info["count_time"] = count_time
    return info


def end_scan_info(end: ScanEnd) -> dict[str, Any]:
    """The ``scan_info`` keys to add when the scan closes."""
    return {
        "end_time": end.end_time,
        "end_reason": end.reason.value,
        "sardana_end": json_safe({"sardana_status": end.sardana_status, **end.extra}),
    }


def validate_scan_info(info: dict[str, Any]) -> None:
    """Raise ValueError when ``info`` does not follow blissdata's ``ScanInfoDict``."""
    try:
        _ScanInfoModel.model_validate({"scan_info": info})
    except pydantic.ValidationError as exc:
        raise ValueError(f"scan_info does not follow blissdata's ScanInfoDict: {exc}") from exc


def build_plots(desc: ScanDescription) -> list[dict[str, Any]]:
    """Flint plots (``scan_info["plots"]``) from Sardana's plot_type / plot_axes.

    What Flint 2.1's parser does with them decides the shape: a declared ``plots``
    list replaces Flint's own default curve and scatter plots, and any "1d-plot"
    replaces every 1D plot Flint would infer.

    - Scalars of :func:`plotted_columns` become curves against their x axis (one
      curve plot per x axis), or one scatter plot for mesh scans; when only 1D/2D
      channels are plotted, the first scalar channel is the curve, as Flint would
      infer it, so that the curve plot is not lost.
    - Plotted 1D channels become "1d-plot"s only when each has a 1D x axis channel:
      Flint's parser fails on a "1d-plot" without ``x`` (and gives up the whole
      scan). Otherwise none is declared and Flint infers one per 1D channel,
      against the index.
    - 2D channels (``dim`` 2): blissdata's schema has no image plot kind; Flint
      makes an image plot of each by itself.

    Value-reference columns are not plotted. An empty list means: let Flint infer
    (:func:`build_scan_info` then leaves ``plots`` out).
    """
    plotted = plotted_columns(desc)
    scalars = [c for c in plotted if c.ndim == 0]
    if not scalars:
        scalars = [c for c in (first_scalar_channel(desc),) if c is not None]
    plots: list[dict[str, Any]] = []
    if is_mesh(desc) and scalars:
        x, y = desc.axes[:2]
        items = [{"kind": "scatter", "x": x.stream, "y": y.stream, "value": c.stream}
                 for c in scalars]
        plots.append({"kind": "scatter-plot", "items": items})
    elif scalars:
        curves: dict[str | None, list[dict[str, Any]]] = {}
        for col in scalars:
            col_x = x_axis(desc, col)
            item = {"kind": "curve", "y": col.stream} | ({"x": col_x.stream} if col_x else {})
            curves.setdefault(col_x.stream if col_x else None, []).append(item)
        plots.extend({"kind": "curve-plot", "items": items} for items in curves.values())
    spectra = [(col, spectrum_axis(desc, col)) for col in plotted if col.ndim == 1]
    axes = [(col, x) for col, x in spectra if x is not None]
    if len(axes) == len(spectra):
        plots.extend({"kind": "1d-plot", "name": col.label, "x": x.stream,
                      "items": [{"kind": "curve", "y": col.stream}]} for col, x in axes)
    return plots


def spectrum_axis(desc: ScanDescription, col: Column) -> Column | None:
    """The 1D x axis channel of a 1D column (the first 1D column its ``plot_axes``
    names, of the same length), else None (plotted against the index)."""
    for name in col.plot_axes:
        axis = _lookup(desc, name)
        if axis is not None and axis is not col and axis.ndim == 1 and axis.shape == col.shape:
            return axis
    return None


def plotted_columns(desc: ScanDescription) -> list[Column]:
    """The columns to plot, shared by every plot the product makes (Flint's
    ``plots``, the NeXus ``plot_<i>`` groups, ``sardana-redis plot``).

    Those Sardana plots (``plot_type`` set, value references left out); when the
    measurement group plots nothing, the first scalar channel, so that every scan
    has a plot (drawn against :func:`x_axis`, that is the first moveable).
    """
    plotted = [c for c in desc.columns if c.plot_type and not c.value_ref]
    if plotted:
        return plotted
    first = first_scalar_channel(desc)
    return [first] if first is not None else []


def first_scalar_channel(desc: ScanDescription) -> Column | None:
    """The first scalar channel (not a moveable, time or point number), the plot
    every scan can fall back to."""
    return next((c for c in desc.columns
                 if c.kind is ColumnKind.CHANNEL and c.ndim == 0 and not c.value_ref), None)


def is_mesh(desc: ScanDescription) -> bool:
    """True for a grid scan that can be shown as a scatter (mesh shape and 2+ axes)."""
    return desc.mesh_shape is not None and len(desc.axes) >= 2


def x_axis(desc: ScanDescription, col: Column) -> Column | None:
    """The scan-long x axis of a plotted column: the first scalar column its
    ``plot_axes`` names (``<mov>``, ``<idx>``, a column name or label), else
    :func:`default_axis`."""
    for name in col.plot_axes:
        axis = _lookup(desc, name)
        if axis is not None and axis.ndim == 0 and not axis.value_ref:
            return axis
    return default_axis(desc)


def default_axis(desc: ScanDescription) -> Column | None:
    """The first moveable, else the time column (``dt``), else the point number."""
    for kind in (ColumnKind.MOVEABLE, ColumnKind.TIMESTAMP, ColumnKind.POINT_NB):
        for col in desc.columns:
            if col.kind is kind:
                return col
    return None


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: numpy values to Python ones, tuples to lists, enums to
    their values, NaN/inf to None, unknown objects to their str."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return json_safe(value.tolist())
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):  # base64 text of an h5map's InlineBase64 value
        return value.decode("utf-8", "replace")
    return str(value)


def _lookup(desc: ScanDescription, name: str) -> Column | None:
    """The column a Sardana plot axis names."""
    if name == "<idx>":
        return next((c for c in desc.columns if c.kind is ColumnKind.POINT_NB), None)
    if name == "<mov>":
        return desc.axes[0] if desc.axes else None
    return next((c for c in desc.columns if name in (c.key, c.label, c.stream, c.dataset)), None)


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _channel_info(desc: ScanDescription, col: Column) -> dict[str, Any]:
    info: dict[str, Any] = {"dim": col.ndim, "display_name": col.label}
    unit = (col.units if col.units not in ("", "No unit") else None) or \
        ("s" if col.kind is ColumnKind.TIMESTAMP else None)
    if unit:
        info["unit"] = unit
    for key, value in (("min", _finite(col.min_value)), ("max", _finite(col.max_value))):
        if value is not None:
            info[key] = value
    if desc.npoints > 0:
        info["points"] = desc.npoints
    if is_mesh(desc):
        mesh_shape = desc.mesh_shape or ()
        for axis_id, (axis, points) in enumerate(zip(desc.axes, mesh_shape, strict=False)):
            if axis is col:
                info.update(axis_id=axis_id, axis_points=points, axis_kind="forth")
        if col.ndim == 0:
            info["group"] = "scatter"
    return info


def _by_dim(desc: ScanDescription, streams: list[str]) -> dict[str, list[str]]:
    dims = [desc.column(s).ndim for s in streams]
    return {
        "scalars": [s for s, d in zip(streams, dims, strict=True) if d == 0],
        "spectra": [s for s, d in zip(streams, dims, strict=True) if d == 1],
        "images": [s for s, d in zip(streams, dims, strict=True) if d >= 2],
    }


def _device_tree(desc: ScanDescription) -> tuple[dict[str, dict], dict[str, Any]]:
    """Devices and the acquisition chain: ``axis`` (moveables) triggers ``timer``
    (point number, times) which triggers one device per channel (keyed by its
    Sardana full name); the top master is ``timer`` when there is no moveable."""
    def streams(*kinds: ColumnKind) -> list[str]:
        return [c.stream for c in desc.columns if c.kind in kinds]

    channels = [c for c in desc.columns if c.kind is ColumnKind.CHANNEL]
    devices: dict[str, dict] = {}
    if desc.axes:
        devices[AXIS_DEVICE] = {"name": AXIS_DEVICE, "channels": streams(ColumnKind.MOVEABLE),
                                "triggered_devices": [TIMER_DEVICE]}
    devices[TIMER_DEVICE] = {"name": TIMER_DEVICE,
                             "channels": streams(ColumnKind.POINT_NB, ColumnKind.TIMESTAMP),
                             "triggered_devices": [c.key for c in channels]}
    devices.update({c.key: {"name": c.label, "channels": [c.stream]} for c in channels})
    top = next(iter(devices))
    others = [s for name, dev in devices.items() if name != top for s in dev["channels"]]
    chain = {"top_master": top, "devices": list(devices), **_by_dim(desc, others),
             "master": _by_dim(desc, devices[top]["channels"])}
    return devices, chain


def _positioners(desc: ScanDescription) -> dict[str, dict[str, Any]]:
    """BLISS-style positioners from the numeric pre-scan snapshot values."""
    numeric = [s for s in desc.snapshot
               if isinstance(s.value, numbers.Real) and not isinstance(s.value, (bool, np.bool_))]
    return {
        "positioners_start": {s.label: json_safe(s.value) for s in numeric},
        "positioners_units": {s.label: s.units for s in numeric},
    }
