"""What readers use of a published scan's ``scan_info``, parsed and checked once.

The publisher's model is :class:`~sardana_redis.scan_model.ScanDescription`, turned
into ``scan_info`` by :mod:`sardana_redis.publishing.scan_info`. Readers (the writers,
``sardana-redis show``) get ``scan_info`` back from Redis, where anyone may have
put anything: :meth:`PublishedScan.parse` reads the parts they use, checks their
types, and raises :class:`~sardana_redis.scan_model.ScanRejected` saying what is
wrong. A scan from another blissdata publisher (no ``sardana`` part) is a valid
scan with no Sardana columns, files or custom data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sardana_redis.custom_data import CustomData, read_custom_data
from sardana_redis.scan_model import ScanRejected, file_format


@dataclass(frozen=True)
class PublishedColumn:
    """One of Sardana's columns as published (``scan_info["sardana"]["columns"]``)."""

    stream: str
    label: str
    meta: Mapping[str, Any] = field(default_factory=dict)  #: the whole published entry


@dataclass(frozen=True)
class PublishedScan:
    """The reader's view of a published scan (see the module docstring)."""

    info: Mapping[str, Any]  #: the whole ``scan_info``
    columns: tuple[PublishedColumn, ...] = ()  #: in Sardana's order
    requested_files: tuple[tuple[str, str | None], ...] = ()  #: (path, format or None)
    beamline: str | None = None
    custom_data: tuple[CustomData, ...] = ()
    refused: tuple[str, ...] = ()  #: parts left out (custom data items), and why
    data_compression_rank: int | None = None  #: Sardana's ``DataCompressionRank``, when set

    @classmethod
    def parse(cls, info: Any) -> PublishedScan:
        if not isinstance(info, Mapping):
            raise ScanRejected("scan_info is not a mapping")
        sardana = info.get("sardana", {})
        if sardana is None:
            sardana = {}
        if not isinstance(sardana, Mapping):
            raise ScanRejected("scan_info.sardana is not a mapping")
        custom, refused = read_custom_data(info)
        beamline, rank = sardana.get("beamline"), sardana.get("data_compression_rank")
        return cls(info=info, columns=_columns(sardana.get("columns")),
                   requested_files=_files(sardana.get("requested_files")),
                   beamline=beamline if isinstance(beamline, str) else None,
                   custom_data=tuple(custom), refused=tuple(refused),
                   data_compression_rank=rank
                   if isinstance(rank, int) and not isinstance(rank, bool) else None)

    def files_of(self, fmt: str) -> list[str]:
        """The requested files of format ``fmt`` (``"spec"``, ``"nexus"``)."""
        return [path for path, declared in self.requested_files
                if (declared or file_format(path)) == fmt]

    def column(self, stream: str) -> PublishedColumn | None:
        return next((c for c in self.columns if c.stream == stream), None)


def _list(value: Any, what: str) -> list:
    """A list part of ``scan_info.sardana`` (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScanRejected(f"scan_info.sardana.{what} is not a list")
    return value


def _columns(columns: Any) -> tuple[PublishedColumn, ...]:
    out = []
    for column in _list(columns, "columns"):
        if not isinstance(column, Mapping):
            raise ScanRejected("scan_info.sardana.columns holds a non-mapping entry")
        stream = column.get("stream")
        if isinstance(stream, str):
            out.append(PublishedColumn(stream, str(column.get("label") or stream), column))
    return tuple(out)


def _files(files: Any) -> tuple[tuple[str, str | None], ...]:
    out = []
    for entry in _list(files, "requested_files"):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise ScanRejected("malformed entry in scan_info.sardana.requested_files")
        declared = entry.get("format")
        out.append((entry["path"], declared if isinstance(declared, str) and declared else None))
    return tuple(out)
