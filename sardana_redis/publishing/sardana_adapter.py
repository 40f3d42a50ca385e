"""Sardana in, neutral scan description out.

Reads what Sardana gives a recorder (the record list environment, the
macro, the MacroServer environment variables) and builds a
:class:`~sardana_redis.scan_model.ScanDescription` and, at the end, a
:class:`~sardana_redis.scan_model.ScanEnd`. Nothing here talks to Redis.

Experiment information comes from MacroServer environment variables, set
with ``senv`` or the ``redis_*`` macros (see :data:`INFO_VARIABLES`).
"""

from __future__ import annotations

import datetime
import getpass
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sardana_redis import exact_values
from sardana_redis.scan_model import (
    Column,
    ColumnKind,
    EndReason,
    RequestedFile,
    ScanDescription,
    ScanEnd,
    ScanIdentity,
    SnapshotItem,
    file_format,
    sanitize_dataset_name,
)

RECORDER_NAME = "RedisBlissRecorder"

#: MacroServer environment variables giving the scan identity, by identity field.
INFO_VARIABLES = {
    "session": "RedisSession",
    "beamline": "RedisBeamline",
    "proposal": "RedisProposal",
    "collection": "RedisCollection",
    "dataset": "RedisDataset",
}
#: Environment variable: publish the files requested through ScanRecorder (default True).
WRITE_FILES_VARIABLE = "RedisWriteFiles"
URL_VARIABLE = "RedisURL"

#: Sardana end status -> blissdata end_reason.
END_REASONS = {
    "Normal": EndReason.SUCCESS,
    "Stop": EndReason.USER_ABORT,
    "Abort": EndReason.USER_ABORT,
    "Exception": EndReason.FAILURE,
}

GetEnv = Callable[[str, Any], Any]


def iso_time(value: Any) -> str:
    """ISO 8601 with the local time zone, from Sardana's naive datetimes or epochs."""
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone().isoformat()
    return datetime.datetime.now().astimezone().isoformat()


def parse_shape(shape: Any) -> tuple[int, ...]:
    """A column shape as a tuple of ints (Sardana may send ``['1024']`` or None)."""
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)):
        shape = [shape]
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        return ()
    return () if dims in ((1,), (0,)) else dims


def default_session(door_name: str | None) -> str:
    """The session used when ``RedisSession`` is not set: the Door's name, made tag-safe.

    ``door/sr/1`` and ``tango://host:10000/door/sr/1`` give ``door_sr_1``.
    """
    name = door_name or "sardana"
    if "://" in name:
        name = name.split("://", 1)[1].split("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _kind(name: str, index: int, ref_moveables: Sequence[str], desc: Any) -> ColumnKind:
    if name == "point_nb":
        return ColumnKind.POINT_NB
    if name == "timestamp":
        return ColumnKind.TIMESTAMP
    if hasattr(desc, "moveable") or name in ref_moveables:
        return ColumnKind.MOVEABLE
    return ColumnKind.CHANNEL


def _float_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken (two labels that clean up to the
    same NeXus dataset name: both columns are kept); added to ``taken``."""
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}_{n}"
    taken.add(unique)
    return unique


def describe_columns(datadesc: Iterable[Any],
                     ref_moveables: Sequence[str] = ()) -> tuple[Column, ...]:
    """One :class:`Column` per Sardana ``ColumnDesc``; stream names are unique labels."""
    columns = []
    used: set[str] = set()
    datasets: set[str] = set()
    for index, dd in enumerate(datadesc):
        name = str(dd.name)
        label = str(getattr(dd, "label", name) or name)
        stream = label if label not in used else f"{label} ({name})"
        used.add(stream)
        dataset = unique_name(sanitize_dataset_name(label) or f"column{index}", datasets)
        kind = _kind(name, index, ref_moveables, dd)
        shape = () if kind is not ColumnKind.CHANNEL else parse_shape(getattr(dd, "shape", None))
        plot_axes = tuple(str(a) for a in (getattr(dd, "plot_axes", None) or ()))
        metadata = {k: _json_safe(v) for k, v in dd.toDict().items()
                    if k not in ("moveable", "instrument")} if hasattr(dd, "toDict") else {}
        units = getattr(dd, "data_units", None)
        columns.append(Column(
            key=name,
            stream=stream,
            label=label,
            dataset=dataset,
            dtype=str(getattr(dd, "dtype", "float64") or "float64"),
            shape=shape,
            kind=kind,
            units=str(units) if units is not None else None,
            plot_type=int(getattr(dd, "plot_type", 0) or 0),
            plot_axes=plot_axes,
            value_ref=bool(getattr(dd, "value_ref_enabled", False)),
            instrument=_instrument_path(getattr(dd, "instrument", None)),
            source=str(dd.source) if getattr(dd, "source", None) else None,
            min_value=_float_or_none(getattr(dd, "min_value", None)),
            max_value=_float_or_none(getattr(dd, "max_value", None)),
            metadata=metadata,
        ))
    return tuple(columns)


def _instrument_path(instrument: Any) -> str | None:
    if instrument is None:
        return None
    if hasattr(instrument, "getFullName"):
        instrument = instrument.getFullName()
    instrument = str(instrument)
    return instrument or None


def _shape_of(value: Any) -> tuple[int, ...]:
    """The shape Sardana gives a snapshot value (``numpy.shape``); () when it has none."""
    try:
        return tuple(int(d) for d in np.shape(value)) if value is not None else ()
    except (TypeError, ValueError):
        return ()


def describe_snapshot(snapshot: Iterable[Any]) -> tuple[SnapshotItem, ...]:
    """The pre-scan snapshot (``env['preScanSnapShot']``) as JSON-safe items."""
    items = []
    seen: set[str] = set()
    for dd in snapshot:
        label = str(getattr(dd, "label", dd.name))
        dataset = sanitize_dataset_name(label)
        if not dataset or dataset in seen:
            continue
        seen.add(dataset)
        value = getattr(dd, "pre_scan_value", None)
        items.append(SnapshotItem(
            name=str(dd.name), label=label, dataset=dataset,
            value=_json_safe(value),
            dtype=str(getattr(dd, "dtype", "float64")),
            shape=_shape_of(value),
            instrument=_instrument_path(getattr(dd, "instrument", None)),
            exact=exact_values.encode(value) if value is not None else None,
        ))
    return tuple(items)


def requested_files(scan_dir: Any, scan_file: Any, scan_recorder: Any,
                    recorder_name: str = RECORDER_NAME) -> tuple[RequestedFile, ...]:
    """The ``ScanFile`` entries routed to this recorder by ``ScanRecorder`` (Sardana pairs
    them by index)."""
    if not scan_dir or not scan_file:
        return ()
    files = [scan_file] if isinstance(scan_file, str) else list(scan_file)
    recorders = [scan_recorder] if isinstance(scan_recorder, str) else list(scan_recorder or ())
    out = []
    for i, name in enumerate(files):
        if i < len(recorders) and recorders[i] == recorder_name:
            fmt = file_format(str(name))
            if fmt is not None:
                path = os.path.abspath(os.path.join(str(scan_dir), str(name)))
                out.append(RequestedFile(path, fmt))
    return tuple(out)


def describe_scan(env: Mapping[str, Any], macro: Any, get_env: GetEnv) -> ScanDescription:
    """The :class:`ScanDescription` of the scan whose record list environment is ``env``.

    ``macro`` is the scan macro (may be None); ``get_env(name, default)`` reads
    MacroServer environment variables.
    """
    ref_moveables = [str(m) for m in env.get("ref_moveables", ())]
    columns = describe_columns(env.get("datadesc", ()), ref_moveables)
    title = str(env.get("title", ""))
    scan_type = (macro.getName() if macro is not None else "") or (title.split() or ["scan"])[0]
    files: tuple[RequestedFile, ...] = ()
    if get_env(WRITE_FILES_VARIABLE, True):
        files = requested_files(env.get("ScanDir"), env.get("ScanFile"),
                                get_env("ScanRecorder", ()))
    info = {field: get_env(var, None) for field, var in INFO_VARIABLES.items()}
    door = macro.getDoorName() if macro is not None else None
    nexus = [f.path for f in files if f.format == "nexus"]
    paths: list[str | None] = [*nexus, *(f.path for f in files), None]
    identity = ScanIdentity(
        name=scan_type,
        number=int(env.get("serialno", 0)),
        session=str(info["session"] or default_session(door)),
        beamline=_str_or_none(info["beamline"]),
        proposal=_str_or_none(info["proposal"]),
        collection=_str_or_none(info["collection"]),
        dataset=_str_or_none(info["dataset"]),
        path=paths[0],
    )
    point_nb = next((c for c in columns if c.kind is ColumnKind.POINT_NB), None)
    npoints = getattr(macro, "nb_points", None)
    if npoints is None and point_nb is not None and point_nb.max_value is not None:
        npoints = int(point_nb.max_value) + 1
    intervals = getattr(macro, "nr_intervs", None)
    mesh_shape = tuple(int(n) + 1 for n in intervals) \
        if intervals is not None and len(intervals) > 1 else None
    count_time = _float_or_none(getattr(macro, "integ_time", None))
    snapshot = describe_snapshot(env.get("preScanSnapShot", ()))
    return ScanDescription(
        identity=identity,
        title=title,
        scan_type=scan_type,
        start_time=iso_time(env.get("starttime")),
        user=str(env.get("user") or getpass.getuser()),
        columns=columns,
        npoints=int(npoints) if isinstance(npoints, (int, np.integer)) and npoints > 0 else 0,
        count_time=count_time,
        snapshot=snapshot,
        files=files,
        scan_dir=str(env["ScanDir"]) if env.get("ScanDir") else None,
        instruments=_instruments(env.get("instrumentlist", ())),
        mesh_shape=mesh_shape,
        extra={
            "beamline": identity.beamline,
            "macro_id": _json_safe(env.get("macro_id")),
            "ref_moveables": ref_moveables,
            "counters": _json_safe(env.get("counters", [])),
            "estimated_time": _float_or_none(env.get("estimatedtime")),
            "total_scan_intervals": _json_safe(env.get("total_scan_intervals")),
            "sample_info": _json_safe(env.get("SampleInfo", {})),
            "source_info": _json_safe(env.get("SourceInfo", {})),
            "door": door,
            "scan_start_time": iso_time(env["scanstarttime"]) if env.get("scanstarttime") else None,
            "data_compression_rank": _int_or_none(get_env("DataCompressionRank", None)),
            "snapshot_0d": [{"label": s.label, "dtype": s.dtype, "value": s.exact}
                            for s in snapshot if not s.shape and s.exact is not None],
            "snapshot_1d": [{"label": s.label, "dtype": s.dtype, "value": s.exact}
                            for s in snapshot if len(s.shape) == 1 and s.exact is not None],
        },
    )


def _int_or_none(value: Any) -> int | None:
    """An int (Sardana's ``DataCompressionRank``...) or None when unset or not an int."""
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _instruments(instrument_list: Iterable[Any]) -> dict[str, str]:
    out = {}
    for inst in instrument_list:
        try:
            out[str(inst.getFullName())] = str(inst.klass)
        except AttributeError:
            continue
    return out


def _end_status_name(status: Any) -> str | None:
    """Sardana's ``endstatus`` (a ScanEndStatus value or name) as its name."""
    if status is None:
        return None
    if isinstance(status, (int, np.integer)):
        from sardana.macroserver.scan.gscan import ScanEndStatus

        return ScanEndStatus.whatis(int(status))
    return str(status).rsplit(".", 1)[-1]


def describe_end(env: Mapping[str, Any]) -> ScanEnd:
    """How the scan ended, from the record list environment at its end."""
    status_name = _end_status_name(env.get("endstatus"))
    reason = END_REASONS.get(status_name or "", EndReason.FAILURE)
    return ScanEnd(
        end_time=iso_time(env.get("endtime")),
        reason=reason,
        sardana_status=status_name,
        extra={k: _json_safe(env.get(k)) for k in ("deadtime", "motiontime", "acqtime")
               if env.get(k) is not None},
    )


#: Sardana macro states once a macro's code has run to its end.
MACRO_ENDED = frozenset({"finish", "stop", "abort", "exception"})


def top_macro(macro: Any) -> Any:
    """The top-level macro a (scan) macro runs under (itself when run directly)."""
    seen = set()
    while macro is not None and id(macro) not in seen:
        seen.add(id(macro))
        try:
            parent = macro.getParentMacro()
        except Exception:
            break
        if parent is None:
            break
        macro = parent
    return macro


def macro_running(macro: Any) -> bool:
    """True while ``macro``'s code runs (Sardana's macro status is not an ended one)."""
    status = macro.getMacroStatus()
    return not (isinstance(status, dict) and status.get("state") in MACRO_ENDED)
