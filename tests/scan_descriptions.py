"""Hand-written scan descriptions, as the recorder would make them from a Sardana scan, for
tests and benchmarks that publish or build scans without a real Sardana (no servers here).

Small factories that compose: columns (:func:`column`, :func:`point_nb`, :func:`dt`,
:func:`moveable`, :func:`motor`, :func:`counters`, :func:`counter`, :func:`spectrum`), the
files a scan asks for (:func:`requested_files`), a plain step scan (:func:`step_scan`), and
the detailed descriptions of a Sardana session at ``/data/alice`` (:func:`describe`,
:func:`ascan_desc`, :func:`mesh_desc`... :data:`ALL_DESCS`) that the scan_info and h5map
tests and golden files are built from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from sardana_redis.scan_model import (
    Column,
    ColumnKind,
    RequestedFile,
    ScanDescription,
    ScanIdentity,
    SnapshotItem,
    sanitize_dataset_name,
)

#: The start time of every plain step scan.
START_TIME = "2026-01-01T00:00:00+00:00"


def column(label: str, kind: ColumnKind = ColumnKind.CHANNEL, key: str | None = None,
           dtype: str = "float64", shape: tuple[int, ...] = (), **kwargs: Any) -> Column:
    """A column whose stream is its label (Sardana's key defaults to the label too)."""
    return Column(key=key or label, stream=label, label=label, dataset=sanitize_dataset_name(label),
                  dtype=dtype, shape=shape, kind=kind, **kwargs)


def point_nb(npoints: int | None = None) -> Column:
    """Sardana's ``#Pt No`` column; with ``npoints``, its range is declared."""
    limits = {} if npoints is None else {"min_value": 0, "max_value": npoints - 1}
    return column("#Pt No", ColumnKind.POINT_NB, key="point_nb", dtype="int64", **limits)


def dt() -> Column:
    """Sardana's ``dt`` column (time since the scan started)."""
    return column("dt", ColumnKind.TIMESTAMP, key="timestamp")


def moveable(name: str = "mot01", **kwargs: Any) -> Column:
    """A scanned motor, scalar float64, nothing declared."""
    return column(name, ColumnKind.MOVEABLE, **kwargs)


def motor(name: str, lo: float = 0.0, hi: float = 10.0, **kwargs: Any) -> Column:
    """A scanned motor in mm from ``lo`` to ``hi``."""
    return moveable(name, units="mm", min_value=lo, max_value=hi, **kwargs)


def counters(*names: str, **kwargs: Any) -> tuple[Column, ...]:
    """Scalar float64 channels keyed by their names."""
    return tuple(column(name, **kwargs) for name in names)


def counter(i: int, **kwargs: Any) -> Column:
    """Counter ``ct0<i>`` of a Tango counter/timer, plotted against the first motor."""
    kwargs.setdefault("plot_type", 1)
    kwargs.setdefault("plot_axes", ("<mov>",))
    return column(f"ct0{i}", key=f"tango://host:10000/expchan/ctctrl01/{i}", **kwargs)


def spectrum(name: str = "oned01", points: int = 1024, **kwargs: Any) -> Column:
    """A 1D channel of ``points`` float64 values per scan point."""
    return column(name, shape=(points,), **kwargs)


def requested_files(spec: str | None = None, nexus: str | None = None) -> tuple[RequestedFile, ...]:
    """The files a scan asks for, SPEC first."""
    return tuple(RequestedFile(path, kind) for kind, path in (("spec", spec), ("nexus", nexus))
                 if path is not None)


#: A point number, ``mot01`` and ``ct01``: the smallest step scan.
STEP_COLUMNS = (point_nb(), moveable("mot01"), column("ct01"))


def step_scan(number: int, session: str, columns: Iterable[Column] = STEP_COLUMNS, *,
              title: str | None = None, user: str = "tester", path: str | None = None,
              **kwargs: Any) -> ScanDescription:
    """Scan ``number`` of ``session``: an ``ascan`` started at :data:`START_TIME` (title
    ``ascan mot01 0 1 <number>`` unless given); ``kwargs`` go to :class:`ScanDescription`."""
    return ScanDescription(
        ScanIdentity("ascan", number, session, path=path),
        f"ascan mot01 0 1 {number}" if title is None else title, "ascan", START_TIME, user,
        tuple(columns), **kwargs)


# the detailed descriptions of scan #12 of alice's session

NEXUS_FILE = "/data/alice/scans.h5"
SPEC_FILE = "/data/alice/scans.dat"


def describe(columns: Iterable[Column], scan_type: str = "ascan", npoints: int = 11,
             **kwargs: Any) -> ScanDescription:
    """Scan #12 of ``door_1`` by alice, asking for :data:`NEXUS_FILE` and :data:`SPEC_FILE`."""
    kwargs.setdefault("files", (RequestedFile(NEXUS_FILE, "nexus"), RequestedFile(SPEC_FILE, "spec")))
    return ScanDescription(
        identity=ScanIdentity(name=scan_type, number=12, session="door_1", path=NEXUS_FILE),
        title=f"{scan_type} mot01 0 10 10 0.1", scan_type=scan_type,
        start_time="2024-05-02T10:00:00.123456+02:00", user="alice",
        columns=tuple(columns), npoints=npoints, count_time=0.1, **kwargs,
    )


def ascan_desc() -> ScanDescription:
    """An ascan of mot01 with 4 counters, NeXus instruments and a pre-scan snapshot."""
    snapshot = (
        SnapshotItem("mot02", "mot02", "mot02", 1.5, "float64", "mm"),
        SnapshotItem("mot01", "mot01", "mot01", 0.0, "float64", "mm"),
        SnapshotItem("sample", "sample", "sample", "Si(111)", "str"),
        SnapshotItem("shutter", "shutter", "shutter", True, "bool"),
        SnapshotItem("mot03", "mot03", "mot03", float("nan"), "float64"),
    )
    columns = [point_nb(11), motor("mot01", instrument="/instrument/mot01"),
               *(counter(i, instrument="/instrument/counters:NXdetector") for i in range(1, 5)), dt()]
    return describe(columns, snapshot=snapshot,
                    instruments={"/instrument": "NXinstrument", "/instrument/mot01": "NXpositioner"})


def mesh_desc() -> ScanDescription:
    """A 3 x 2 mesh of mot01 and mot02 with 2 counters."""
    columns = [point_nb(6), motor("mot01"), motor("mot02", -1.0, 1.0), counter(1), counter(2), dt()]
    return describe(columns, scan_type="mesh", npoints=6, mesh_shape=(3, 2))


def timescan_desc() -> ScanDescription:
    """A timescan: no motor, ct01 plotted against time, ct02 not plotted."""
    return describe([point_nb(5), counter(1, plot_axes=()), counter(2, plot_type=0), dt()],
                    scan_type="timescan", npoints=5)


def detectors_desc() -> ScanDescription:
    """An ascan with a spectrum, an image and an image given by reference."""
    columns = [
        point_nb(11), motor("mot01"), counter(1),
        spectrum("oned01", key="expchan/oned/1", plot_type=1, plot_axes=("<idx>",)),
        column("twod01", key="expchan/twod/1", dtype="uint16", shape=(256, 200), plot_type=2,
               plot_axes=("<idx>", "<idx>")),
        column("twod02", key="expchan/twod/2", dtype="uint16", shape=(512, 512), plot_type=2,
               value_ref=True),
        dt(),
    ]
    return describe(columns)


def odd_desc() -> ScanDescription:
    """Labels that are not names, numpy values and NaN in metadata and extras."""
    columns = [
        point_nb(3), column("Ümlaut mot", ColumnKind.MOVEABLE, key="umot"),
        column("ct µA/s #1", key="expchan/odd/1", units="µA", plot_type=1, plot_axes=("umot",),
               metadata={"min_value": np.float64(0.5), "shape": (), "nan": float("nan")}),
        column("2theta", key="expchan/odd/2", plot_type=1, plot_axes=("<idx>",)), dt(),
    ]
    return describe(columns, npoints=3, extra={"macro_id": "abc", "numpy": np.arange(3)})


def spectrum_with_x_desc() -> ScanDescription:
    """oned01 plotted against the 1D channel energy."""
    return describe([point_nb(3), motor("mot01"), counter(1),
                     spectrum("energy", 8, key="expchan/oned/2"),
                     spectrum("oned01", 8, key="expchan/oned/1", plot_type=1,
                              plot_axes=("energy",)), dt()], npoints=3)


def nothing_to_declare_desc() -> ScanDescription:
    """No scalar channel, a 1D channel without x axis."""
    return describe([point_nb(3), motor("mot01"),
                     spectrum("oned01", 8, key="expchan/oned/1", plot_type=1), dt()],
                    npoints=3)


ALL_DESCS: list[Callable[[], ScanDescription]] = [
    ascan_desc, mesh_desc, timescan_desc, detectors_desc, odd_desc]
