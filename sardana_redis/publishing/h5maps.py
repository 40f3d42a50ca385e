"""The NeXus layout of a scan, as a blissdata ``h5map``.

Pure functions: no Redis, no running Sardana. The tree is the one Sardana's
NXscanH5_FileRecorder writes (``entry<N>`` with ``measurement``,
``pre_scan_snapshot``, instrument groups and ``plot_<i>`` NXdata groups), with
the measurement datasets taken from the blissdata streams.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pydantic
from blissdata.h5map import Dataset, Group, HDF5ItemType, Inline, InlineBase64, SoftLink, Stream

from sardana_redis.publishing.scan_info import (
    SARDANA_VERSION,
    default_axis,
    is_mesh,
    json_safe,
    plotted_columns,
    x_axis,
)
from sardana_redis.scan_model import Column, ScanDescription, ScanEnd, SnapshotItem

log = logging.getLogger(__name__)

PROGRAM = "sardana_redis"


def build_h5map(desc: ScanDescription, end: ScanEnd | None = None) -> Group:
    """The file-root content of one scan: ``{desc.entry_name: NXentry}``.

    With ``end``, the entry also holds ``end_time`` and ``end_reason``.
    """
    entry_path = f"/{desc.entry_name}"
    plots = _nxdata_groups(desc, entry_path)
    children: dict[str, Any] = {
        "definition": Dataset(value="NXscan"),
        "program_name": Dataset(value=f"sardana ({PROGRAM})",
                                attributes={"version": SARDANA_VERSION}),
        "start_time": Dataset(value=desc.extra.get("scan_start_time") or desc.start_time),
        "macro_start_time": Dataset(value=desc.start_time),
        "title": Dataset(value=desc.title),
        "entry_identifier": Dataset(value=str(desc.identity.number)),
        "user": Group(attributes={"NX_class": "NXuser"},
                      children={"name": Dataset(value=desc.user)}),
        "measurement": _measurement(desc, entry_path),
        **_instrument_groups(desc, entry_path),
        **plots,
        **(end_h5_items(end) if end else {}),
    }
    attributes: dict[str, Any] = {
        "NX_class": "NXentry",
        "epoch": datetime.fromisoformat(desc.start_time).timestamp(),
    }
    if plots:
        attributes["default"] = next(iter(plots))
    entry = Group(attributes=attributes, children=children)
    root_attributes = {"NX_class": "NXroot", "creator": PROGRAM}
    if plots:  # the last scan's plot, for silx and h5web (NXroot@default names an entry)
        root_attributes["default"] = desc.entry_name
    return Group(attributes=root_attributes, children={desc.entry_name: entry})


def end_h5_items(end: ScanEnd) -> dict[str, HDF5ItemType]:
    """Entry-level items only known when the scan ends."""
    return {"end_time": Dataset(value=end.end_time), "end_reason": Dataset(value=end.reason.value)}


def ended_h5maps(h5maps: Mapping[str, Any], end: ScanEnd) -> dict[str, Any]:
    """``h5maps`` as published (without end), with the end items added to every entry:
    for a scan closed by someone else than its publisher (the memory tracker)."""
    items = json_safe({name: item.model_dump() for name, item in end_h5_items(end).items()})
    out = {}
    for path, root in h5maps.items():
        root = copy.deepcopy(root)
        for entry in (root.get("children") or {}).values() if isinstance(root, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("children"), dict):
                entry["children"].update(copy.deepcopy(items))
        out[path] = root
    return out


def build_h5maps(desc: ScanDescription, end: ScanEnd | None = None) -> dict[str, dict]:
    """``scan_info["h5maps"]``: the JSON-safe h5map for each requested NeXus file."""
    paths = [f.path for f in desc.files if f.format == "nexus"]
    if not paths:
        return {}
    # model_dump(mode="json") fails on non-string InlineRaw values with
    # blissdata 2.4.5 and pydantic 2.14: dump to Python, then convert numpy values.
    dumped = build_h5map(desc, end).model_dump()
    return {path: json_safe(dumped) for path in paths}


def _measurement(desc: ScanDescription, entry_path: str) -> Group:
    """One dataset per column (from its stream) and the pre-scan snapshot (linked from
    the instrument groups only, as Sardana does by default)."""
    children: dict[str, Any] = {}
    plotted = _plot_attributes(desc)
    for col in desc.columns:
        if col.dataset in children:
            raise ValueError(f"two columns have the NeXus dataset name {col.dataset!r}")
        attributes = {"units": col.units} if col.units is not None else {}
        attributes.update(plotted.get(col.dataset, {}))
        if col.value_ref:
            attributes["sardana_value_ref"] = "true"
        children[col.dataset] = Dataset(value=Stream(stream=col.stream), attributes=attributes)
    snapshot: dict[str, Any] = {}
    for item in desc.snapshot:
        if item.value is not None and item.dataset not in snapshot:  # first one wins, as in Sardana
            snapshot[item.dataset] = Dataset(value=_snapshot_value(item),
                                             attributes={"units": item.units} if item.units else {})
    children["pre_scan_snapshot"] = Group(attributes={"NX_class": "NXcollection"},
                                          children=snapshot)
    return Group(attributes={"NX_class": "NXcollection"}, children=children)


def _plot_attributes(desc: ScanDescription) -> dict[str, dict[str, Any]]:
    """NeXus 2 dataset attributes of plotted curves (``signal``, ``axes``,
    ``interpretation``), as Sardana's NXscanH5_FileRecorder sets them: signals
    numbered 1 then 2 within each set of curves sharing their axes."""
    groups: dict[str, list[str]] = {}
    for col in desc.columns:
        if col.plot_type == 1 and not col.value_ref:
            groups.setdefault(":".join(col.plot_axes), []).append(col.dataset)
    return {name: {"signal": min(i + 1, 2), "axes": axes, "interpretation": "spectrum"}
            for axes, names in groups.items() for i, name in enumerate(names)}


def _snapshot_value(item: SnapshotItem) -> Any:
    """Typed inline value, bit for bit when the producer encoded it exactly (numbers:
    with the dtype Sardana's h5py gives them, bools as int8); strings as they are."""
    if item.exact is not None:
        return InlineBase64(dtype=item.exact["dtype"], shape=item.exact["shape"],
                            value=item.exact["base64"])
    try:
        return Inline(dtype="int8" if item.dtype == "bool" else item.dtype, value=item.value)
    except pydantic.ValidationError:  # not a numeric dtype (str...)
        return item.value


def _instrument_groups(desc: ScanDescription, entry_path: str) -> dict[str, HDF5ItemType]:
    """Groups along each column's instrument path (``/instrument/mot01``, parts may
    say ``name:NXclass``), each linking to its columns' measurement datasets.

    A group's NX_class comes from the ``name:NXclass`` notation, else from
    ``desc.instruments`` (keyed by entry-relative path, e.g. ``/instrument``),
    else NXcollection, as Sardana's _createNXpath does.

    A path that runs through an item already there as a link (another column's dataset)
    gets no link for this column, as Sardana's NXscanH5_FileRecorder skips it: the column
    stays in ``measurement`` (logged).
    """
    root = Group()
    snapshot = [(s.instrument, s.dataset, f"{entry_path}/measurement/pre_scan_snapshot/{s.dataset}")
                for s in desc.snapshot if s.value is not None]
    for instrument, dataset, target in [
            *((c.instrument, c.dataset, f"{entry_path}/measurement/{c.dataset}")
              for c in desc.columns),
            *snapshot]:
        parts = [p for p in (instrument or "").split("/") if p]
        if not parts:
            continue
        group = _group_along(root, parts, desc.instruments)
        if isinstance(group, Group):  # columns first, as Sardana
            group.children.setdefault(dataset, SoftLink(target_path=target))
        else:
            log.warning("No instrument link for %s: its path %s runs through another "
                        "column's link", dataset, group)
    return root.children


def _group_along(root: Group, parts: list[str], classes: Mapping[str, str]) -> Group | str:
    """The group at the end of ``parts`` under ``root``, made as needed; or the path where
    an item other than a group is in the way."""
    group, path = root, ""
    for part in parts:
        name, _, nx_class = part.partition(":")
        path += "/" + name
        if name not in group.children:
            group.children[name] = Group(attributes={
                "NX_class": nx_class or classes.get(path, "NXcollection")})
        child = group.children[name]
        if not isinstance(child, Group):
            return path
        group = child
    return group


def _plot_rank(col: Column) -> int:
    """The rank of one point of a plotted column in the file (references become images)."""
    return len(col.shape) if col.value_ref else col.ndim


def _nxdata_groups(desc: ScanDescription, entry_path: str) -> dict[str, Group]:
    """NXdata groups ``plot_<i>`` of the plotted columns, grouped by axes as
    Sardana's _createNXData does, scalar plots first.

    Scalars are plotted against their x axis, or against both axes for mesh
    scans (a silx scatter); 1D and 2D columns against the scan's default axis
    (other dimensions "."). Plotted value-reference images are plotted too: the writer
    makes their virtual dataset of images.
    """
    images = [c for c in desc.columns if c.value_ref and c.plot_type and len(c.shape) == 2]
    groups: dict[tuple[str, ...], list[str]] = {}
    for col in sorted([*plotted_columns(desc), *images], key=_plot_rank):
        ndim = _plot_rank(col)
        axes: Sequence[Column | None]
        if ndim == 0:
            axes = desc.axes[:2] if is_mesh(desc) else [x_axis(desc, col)]
        else:
            axes = [default_axis(desc)]
        names = tuple(a.dataset if a else "." for a in axes) + (".",) * ndim
        groups.setdefault(names, []).append(col.dataset)
    plots = {}
    for i, (axis_names, signals) in enumerate(groups.items(), start=1):
        attributes: dict[str, Any] = {"NX_class": "NXdata", "signal": signals[0],
                                      "axes": list(axis_names)}
        if len(signals) > 1:
            attributes["auxiliary_signals"] = signals[1:]
        links = {name: SoftLink(target_path=f"{entry_path}/measurement/{name}")
                 for name in (*signals, *axis_names) if name != "."}
        plots[f"plot_{i}"] = Group(attributes=attributes, children=links)
    return plots
