"""The neutral description of a scan: what the publisher, writers and tools share.

Nothing here knows Sardana or Redis. The Sardana adapter builds a
:class:`ScanDescription` from a record list; the publisher turns it into a
blissdata scan (streams, ``scan_info``, ``h5maps``).
"""

from __future__ import annotations

import datetime
import enum
import re
from dataclasses import dataclass, field
from typing import Any

from sardana_redis.custom_data import CustomData


class ColumnKind(str, enum.Enum):
    """What a recordlist column holds."""

    POINT_NB = "point_nb"
    MOVEABLE = "moveable"
    CHANNEL = "channel"
    TIMESTAMP = "timestamp"


class EndReason(str, enum.Enum):
    """blissdata's ``end_reason`` values."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    USER_ABORT = "USER_ABORT"
    DELETION = "DELETION"


#: File formats the writer services produce, by file extension.
FILE_FORMATS = {".h5": "nexus", ".hdf5": "nexus", ".nxs": "nexus", ".dat": "spec", ".spec": "spec"}


class ScanRejected(ValueError):
    """A scan whose description cannot be written (malformed or hostile)."""


def parse_time(value: Any) -> datetime.datetime:
    """A datetime from an ISO 8601 string, in the time zone the string gives (the
    MacroServer's, as Sardana writes its times), else local; now when missing or malformed."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.astimezone()
        except ValueError:
            pass
    return datetime.datetime.now().astimezone()


def sanitize_dataset_name(label: str) -> str:
    """NeXus dataset name of a column label, as Sardana's NXscanH5_FileRecorder makes it."""
    if label[:1].isdigit():
        label = "_" + label
    return "".join(c for c in label.replace(" ", "_") if c.isalnum() or c == "_")


def file_format(path: str) -> str | None:
    """``"nexus"``, ``"spec"`` or None for a file name."""
    match = re.search(r"\.[^./]+$", path)
    return FILE_FORMATS.get(match.group(0).lower()) if match else None


@dataclass(frozen=True)
class StreamShape:
    """What a reader needs to know of one published stream."""

    dtype: str  #: numpy dtype name, or "json"
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Column:
    """One recordlist column, published as one stream."""

    key: str  #: key in Sardana's ``record.data`` (full name for channels)
    stream: str  #: blissdata stream name (the column label, made unique)
    label: str  #: Sardana's label (``#Pt No``, ``mot01``, ``ct01``, ``dt``)
    dataset: str  #: NeXus dataset name (sanitised label)
    dtype: str  #: numpy dtype name of one value
    shape: tuple[int, ...]  #: shape of one value: () scalar, (n,) 1D, (h, w) 2D
    kind: ColumnKind
    units: str | None = None
    plot_type: int = 0  #: Sardana's plot_type: 0 none, 1 curve, 2 image
    plot_axes: tuple[str, ...] = ()
    value_ref: bool = False  #: values are references (``h5file:///f::/dset``) to detector files
    instrument: str | None = None  #: NeXus instrument path, e.g. ``/instrument/mot01``
    source: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ndim(self) -> int:
        return 0 if self.value_ref else len(self.shape)


@dataclass(frozen=True)
class SnapshotItem:
    """A pre-scan snapshot value (motor position, ...)."""

    name: str
    label: str
    dataset: str
    value: Any  #: JSON-safe scalar or list
    dtype: str
    units: str | None = None
    shape: tuple[int, ...] = ()
    instrument: str | None = None  #: NeXus instrument path, e.g. ``/slit``
    #: the value bit for bit, as :func:`sardana_redis.exact_values.encode` makes it
    exact: dict[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class RequestedFile:
    """A data file a user asked for this scan (``ScanDir``/``ScanFile``)."""

    path: str  #: absolute path
    format: str  #: ``"nexus"`` or ``"spec"``


@dataclass(frozen=True)
class ScanIdentity:
    """The searchable identity of a scan (blissdata's ESRF identity model)."""

    name: str
    number: int
    session: str
    data_policy: str = "no_policy"
    beamline: str | None = None
    proposal: str | None = None
    collection: str | None = None
    dataset: str | None = None
    path: str | None = None  #: absolute path of the scan's data file

    def as_blissdata(self) -> dict[str, Any]:
        """The identity as blissdata's ``create_scan`` takes it (no ``beamline`` field there)."""
        ident = {
            "name": self.name, "number": self.number, "data_policy": self.data_policy,
            "session": self.session, "proposal": self.proposal,
            "collection": self.collection, "dataset": self.dataset, "path": self.path,
        }
        return {k: v for k, v in ident.items() if v is not None}


@dataclass(frozen=True)
class ScanDescription:
    """Everything known about a scan when it starts."""

    identity: ScanIdentity
    title: str  #: the macro command line
    scan_type: str  #: macro name (``ascan``, ``mesh``, ``ascanct``...)
    start_time: str  #: ISO 8601 with time zone
    user: str
    columns: tuple[Column, ...]
    npoints: int = 0  #: expected points, 0 when unknown/infinite
    count_time: float | None = None
    snapshot: tuple[SnapshotItem, ...] = ()
    files: tuple[RequestedFile, ...] = ()
    scan_dir: str | None = None
    instruments: dict[str, str] = field(default_factory=dict)  #: NeXus path -> NX class
    mesh_shape: tuple[int, ...] | None = None  #: points per moveable for mesh scans
    extra: dict[str, Any] = field(default_factory=dict)  #: JSON-safe Sardana extras
    custom_data: tuple[CustomData, ...] = ()  #: ``addCustomData`` calls before the scan started

    @property
    def entry_name(self) -> str:
        """NeXus entry name, as Sardana's NXscanH5_FileRecorder names it."""
        return f"entry{self.identity.number}"

    def column(self, stream: str) -> Column:
        return next(c for c in self.columns if c.stream == stream)

    @property
    def axes(self) -> tuple[Column, ...]:
        """The reference moveables (x axes)."""
        return tuple(c for c in self.columns if c.kind is ColumnKind.MOVEABLE)


@dataclass(frozen=True)
class ScanEnd:
    """How a scan ended."""

    end_time: str  #: ISO 8601 with time zone
    reason: EndReason
    sardana_status: str | None = None  #: Normal / Stop / Abort / Exception
    extra: dict[str, Any] = field(default_factory=dict)
