"""Looking at the scans in Redis: ``sardana-redis scans`` and ``show`` (``plot``: scan_plot.py).

These work on any blissdata scan (ours, BLISS's), through blissdata's public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.store import DataStore

from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected

#: Identity fields ``sardana-redis scans`` can filter on.
FILTERS = ("session", "name", "number", "proposal", "collection", "dataset")


@dataclass(frozen=True)
class ScanSummary:
    """One line of ``sardana-redis scans``."""

    key: str
    number: int | str  #: "?" for a scan that cannot be read
    name: str
    session: str
    state: str
    points: int
    start_time: str
    end_reason: str


def _points(scan: Any) -> int:
    lengths = [len(stream) for stream in scan.streams.values()]
    return max(lengths, default=0)


def _info(scan: Any) -> Mapping[str, Any]:
    return scan.info if isinstance(scan.info, Mapping) else {}


def untrusted_mappings(value: Any) -> list[Mapping]:
    """The mappings of a list from scan_info (untrusted: anything else is ignored)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def list_scans(store: DataStore, limit: int = 20, **filters: Any) -> list[ScanSummary]:
    """The most recent scans matching the identity ``filters``, oldest first."""
    _, keys = store.search_existing_scans(**{k: v for k, v in filters.items() if v is not None})
    summaries = []
    for key in sorted(keys)[-limit:] if limit else sorted(keys):  # scan keys are ULIDs: time order
        try:
            scan = load(store, key)
        except ScanGone:
            continue  # expired meanwhile
        except LookupError as exc:
            summaries.append(ScanSummary(key, "?", "?", "?", "UNREADABLE", 0, "", str(exc)))
            continue
        info = _info(scan)
        summaries.append(ScanSummary(
            key=key, number=scan.number, name=scan.name, session=str(scan.session or ""),
            state=scan.state.name, points=_points(scan),
            start_time=str(info.get("start_time", ""))[:19].replace("T", " "),
            end_reason=str(info.get("end_reason", "")),
        ))
    return summaries


def format_table(summaries: list[ScanSummary]) -> str:
    """``sardana-redis scans`` output."""
    headers = ("number", "name", "session", "state", "points", "start time", "end reason", "key")
    rows = [(str(s.number), s.name, s.session, s.state, str(s.points), s.start_time,
             s.end_reason or "-", s.key) for s in summaries]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [headers, *rows])


class ScanGone(LookupError):
    """A scan no longer in Redis (deleted or expired)."""


def load(store: DataStore, key: str) -> Any:
    """``store.load_scan(key)``; a scan Redis holds but blissdata cannot read (malformed
    document or state) raises LookupError saying why, a deleted one :class:`ScanGone`."""
    try:
        return store.load_scan(key)
    except ScanNotFoundError as exc:
        raise ScanGone(f"scan {key} is not in Redis: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 - anything in Redis may be malformed
        raise LookupError(f"scan {key} cannot be read: {type(exc).__name__}: {exc}") from None


def find_scan(store: DataStore, scan: str, session: str | None = None) -> Any:
    """A scan by key (``esrf:scan:...``) or by number (the last one, in ``session`` if given)."""
    if not scan.isdigit():
        return load(store, scan)
    filters = {"number": int(scan)} | ({"session": session} if session else {})
    _, keys = store.search_existing_scans(**filters)
    if not keys:
        where = f" in session {session!r}" if session else ""
        raise LookupError(f"no scan number {scan}{where}")
    return load(store, sorted(keys)[-1])


def describe(scan: Any) -> str:
    """``sardana-redis show``: identity, scan_info summary, streams."""
    info = _info(scan)
    lines = [f"{scan.key}", f"  #{scan.number} {scan.name}  session {scan.session!r}  "
             f"state {scan.state.name}"]
    for field in ("proposal", "collection", "dataset", "path"):
        value = getattr(scan, field, None)
        if value:
            lines.append(f"  {field}: {value}")
    for key in ("title", "type", "npoints", "count_time", "start_time", "end_time", "end_reason",
                "user_name", "publication_error"):
        if key in info:
            lines.append(f"  {key}: {info[key]}")
    try:
        files = [path for path, _ in PublishedScan.parse(info).requested_files]
    except ScanRejected as exc:  # shown all the same: this is where one looks at it
        files = [f"(unreadable: {exc})"]
    if files:
        lines.append(f"  requested files: {', '.join(files)}")
    plots = untrusted_mappings(info.get("plots"))
    if plots:
        lines.append(f"  plots: {', '.join(str(p.get('kind')) for p in plots)}")
    lines.append("  streams:")
    for name, stream in scan.streams.items():
        kind = "json" if getattr(stream, "kind", "") == "json" else \
            f"{stream.dtype} {tuple(stream.shape)}"
        lines.append(f"    {name:<20} {kind:<22} {len(stream)} points")
    return "\n".join(lines)
