"""The SPEC file format, as Sardana's SPEC_FileRecorder writes it: pure functions.

:func:`layout_from_scan` reads what a scan declares (``scan_info`` and its
streams) into a :class:`SpecLayout`; :func:`scan_header`, :func:`data_lines`
and :func:`scan_footer` turn it and batches of complete rows into text.
Values are written as Sardana writes them (:mod:`.number_text`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardana_redis import exact_values
from sardana_redis.custom_data import Phase
from sardana_redis.published_scan import PublishedScan
from sardana_redis.scan_model import ScanRejected, StreamShape, parse_time
from sardana_redis.spec_writer.number_text import rows_text, spectra_text

#: Snapshot values per #O/#P line, as SPEC and Sardana write them.
SNAPSHOT_PER_LINE = 8
#: The ``#D`` line's date, as SPEC_FileRecorder writes it (``ctime`` pads the day with a blank).
SPEC_DATE = "%a %b %d %H:%M:%S %Y"


@dataclass(frozen=True)
class SpecLayout:
    """What goes in one scan block of a SPEC file."""

    number: int
    title: str
    user: str
    start_time: datetime.datetime
    columns: tuple[tuple[str, str], ...]  #: (stream, SPEC label) of scalar columns, in order
    mca: tuple[tuple[str, str, int], ...] = ()  #: (stream, label, length) of 1D channels
    not_written: tuple[str, ...] = ()  #: streams noted but not dumped (2D, references)
    snapshot: tuple[tuple[str, Any], ...] = ()  #: (label, value) of the pre-scan snapshot
    snapshot_1d: tuple[tuple[str, str], ...] = ()  #: (label, values) of its 1D items, as #U lines
    custom_before: str = ""  #: ``#UVAR`` lines of custom data added before the scan started

    @property
    def streams(self) -> list[str]:
        """The streams whose points make a row."""
        return [s for s, _ in self.columns] + [s for s, _, _ in self.mca]


def one_line(text: Any) -> str:
    """``text`` on one line of printable characters (controls and line breaks become blanks)."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def spec_label(label: str) -> str:
    """A label without blanks or punctuation, as SPEC_FileRecorder writes ``#L``."""
    return "".join(c for c in str(label).replace(" ", "_") if c.isalnum() or c == "_") or "_"


def _ordered_streams(published: PublishedScan,
                     streams: Mapping[str, StreamShape]) -> list[tuple[str, str]]:
    """(stream, label) in Sardana's column order when the scan says it, else stream order."""
    ordered = [(c.stream, c.label) for c in published.columns if c.stream in streams]
    listed = {s for s, _ in ordered}
    return ordered + [(s, s) for s in streams if s not in listed]


def _snapshot(info: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """(label, text) of the scalar snapshot items for ``#O``/``#P``: Sardana's labels and
    values bit for bit (``snapshot_0d``) as SPEC_FileRecorder writes them, else (scans of
    other publishers) the BLISS positioners."""
    exact = _snapshot_items(info, "snapshot_0d", 0)
    if exact is not None:
        return tuple((label, str(values[()])) for label, values in exact)
    positioners = info.get("positioners")
    start = positioners.get("positioners_start") if isinstance(positioners, Mapping) else None
    if not isinstance(start, Mapping):
        return ()
    return tuple((spec_label(k), v) for k, v in start.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool))


#: The 1D snapshot dtypes SPEC_FileRecorder writes, and the most items it writes.
SNAPSHOT_1D_DTYPES = {"float32", "float64", "int8", "int16", "int32", "int64",
                      "uint8", "uint16", "uint32", "uint64"}
SNAPSHOT_1D_MAX = 100


def _snapshot_items(info: Mapping[str, Any], key: str,
                    ndim: int) -> list[tuple[str, np.ndarray]] | None:
    """(label, values) of the snapshot items ``scan_info["sardana"][key]`` carries bit for
    bit (:mod:`sardana_redis.exact_values`) with a dtype SPEC_FileRecorder writes; None when
    the scan carries none (another publisher)."""
    sardana = info.get("sardana")
    items = sardana.get(key) if isinstance(sardana, Mapping) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("dtype") not in SNAPSHOT_1D_DTYPES:
            continue
        values = exact_values.decode(item.get("value"))
        if values is not None and values.ndim == ndim:
            out.append((one_line(item.get("label", "")), values))
    return out


def _snapshot_1d(info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(label, `` v1 v2 ...``) of the 1D snapshot items, printed as SPEC_FileRecorder prints
    them."""
    items = _snapshot_items(info, "snapshot_1d", 1) or []
    return tuple((label, "".join(" " + str(v) for v in values))
                 for label, values in items[:SNAPSHOT_1D_MAX])


def layout_from_scan(number: Any, info: Mapping[str, Any],
                     streams: Mapping[str, StreamShape]) -> SpecLayout:
    """The SPEC layout of a scan; :class:`ScanRejected` when its description is unusable."""
    published = PublishedScan.parse(info)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ScanRejected(f"scan number {number!r} is not an integer")
    title = info.get("title", "")
    if not isinstance(title, str):
        raise ScanRejected("scan_info.title is not a string")
    columns, mca, not_written = [], [], []
    for stream, label in _ordered_streams(published, streams):
        shape = streams[stream]
        if shape.dtype == "json" or len(shape.shape) >= 2:
            not_written.append(stream)
        elif len(shape.shape) == 1 and shape.shape[0] > 1:
            mca.append((stream, spec_label(label), shape.shape[0]))
        elif len(shape.shape) == 1:
            not_written.append(stream)  # variable-length (or nonsense) spectra have no SPEC layout
        else:
            columns.append((stream, spec_label(label)))
    if not columns and not mca:
        raise ScanRejected("no scalar or 1D stream to write")
    return SpecLayout(
        number=number,
        title=one_line(title),  # whatever the title holds
        user=one_line(info.get("user_name", "")),
        start_time=parse_time(info.get("start_time")),
        columns=tuple(columns),
        mca=tuple(mca),
        not_written=tuple(not_written),
        snapshot=_snapshot(info),
        snapshot_1d=_snapshot_1d(info),
        custom_before=custom_lines(published, before=True),
    )


def custom_lines(published: PublishedScan, before: bool) -> str:
    """The ``#UVAR`` lines (SPEC_FileRecorder's, in Sardana's ``SPEC_CUSTOM_DATA_FORMAT``)
    of the custom data added before the scan started, or of those added later."""
    return "".join(c.spec_line for c in published.custom_data
                   if c.spec_line and (c.phase is Phase.BEFORE) == before)


def file_header(path: str, created: datetime.datetime) -> str:
    """``#F``/``#E``/``#D`` lines that start a new SPEC file."""
    return f"#F {path}\n#E {int(created.timestamp())}\n#D {created.ctime()}\n"


def _multi_lines(char: str, sep: str, items: Sequence[Any]) -> str:
    return "".join(
        f"#{char}{n} {sep.join(str(v) for v in items[i:i + SNAPSHOT_PER_LINE])}\n"
        for n, i in enumerate(range(0, len(items), SNAPSHOT_PER_LINE))
    )


def scan_header(layout: SpecLayout) -> str:
    """``#S`` ... ``#L``: the header of one scan block."""
    start = layout.start_time
    lines = [layout.custom_before,  # written before the scan's header, as Sardana does
             f"\n#S {layout.number} {layout.title}\n", f"#U {layout.user}\n",
             f"#D {start.strftime(SPEC_DATE)}\n", f"#C Acquisition started at {start.ctime()}\n"]
    lines.append(_multi_lines("O", "  ", [label for label, _ in layout.snapshot]))
    lines.append(_multi_lines("P", " ", [value for _, value in layout.snapshot]))
    lines += [f"#U{i:02d} {label} = {values}\n"
              for i, (label, values) in enumerate(layout.snapshot_1d)]
    for stream in layout.not_written:
        lines.append(f"#C {one_line(stream)}: not written in SPEC (2D or referenced data)\n")
    lines.append(f"#N {len(layout.columns)}\n")
    if layout.mca:
        length = layout.mca[0][2]
        lines.append(f"#@MCA {length}C\n#@CHANN {length} 0 {length - 1} 1\n"
                     f"#@MCA_NB {len(layout.mca)}\n")
        lines += [f"#@DET_{i} {label}\n" for i, (_, label, _) in enumerate(layout.mca)]
    lines.append("#L " + "  ".join(label for _, label in layout.columns) + "\n")
    return "".join(lines)


def data_lines(layout: SpecLayout, batch: Mapping[str, Any]) -> str:
    """The ``@A`` and data lines of a batch of complete rows (see :mod:`.number_text`)."""
    rows = rows_text([batch[stream] for stream, _ in layout.columns]) if layout.columns else []
    if not layout.mca:
        return "\n".join(rows) + "\n" if rows else ""
    spectra = [spectra_text(batch[stream]) for stream, _, _ in layout.mca]
    lines = []
    for i in range(len(spectra[0])):
        lines += [spectrum[i] for spectrum in spectra]
        if rows:
            lines.append(rows[i])
    return "\n".join(lines) + "\n" if lines else ""


def point_ends(block: bytes, layout: SpecLayout) -> list[int] | None:
    """Byte offsets in a half-written scan block (which starts with its header): item
    ``k`` is where its first ``k`` complete points end (item 0: the end of the header).
    None when even the header is incomplete. A point is its ``@A`` lines then its data
    line, each ending with a newline."""
    header = scan_header(layout).encode()
    if not block.startswith(header):
        return None
    ends, lines_per_point = [], len(layout.mca) + (1 if layout.columns else 0)
    position, lines = len(header), 0
    if block.startswith(CONTINUED, position) and (newline := block.find(b"\n", position)) >= 0:
        position = newline + 1  # a continuation block: its points follow this line
    while lines_per_point and (newline := block.find(b"\n", position)) >= 0:
        if block[position:position + 1] == b"#":  # the footer: the points ended before it
            break
        position, lines = newline + 1, lines + 1
        if lines == lines_per_point:
            ends.append(position)
            lines = 0
    return [len(header)] + ends


#: How the closing lines of a scan block start.
FOOTER_START = b"#C Acquisition ended at "
#: The line after the header of a block that continues a scan begun in an earlier block.
CONTINUED = b"#C Continued from an earlier block of this scan"
#: The closing line of a block given up on an error.
FAILED = b"#C scan failed: "


def written_by_us(block: bytes, ends: list[int] | None, layout: SpecLayout) -> bool:
    """True when a half-written block (from its start to the end of the file) holds only
    what the writer writes: its header (or the start of it), points, then nothing but a
    line cut by a crash, its footer or its failure line. Anything else (lines another
    program appended while the writer was down) must not be cut."""
    if ends is None:
        return scan_header(layout).encode().startswith(block)
    rest = block[ends[-1]:]
    return (b"\n" not in rest and not rest.startswith(b"#")) or \
        rest.startswith(FOOTER_START) or rest.startswith(FAILED)


def continued(number: int, first: int, why: str) -> str:
    """The ``#C`` line after the header of a block continuing scan ``number`` at point ``first``."""
    return f"{CONTINUED.decode()} (#S {number}, points 0 to {first - 1} above): {one_line(why)}\n"


def failed(reason: str) -> str:
    """The closing ``#C`` line of a block given up on an error."""
    return f"{FAILED.decode()}{one_line(reason)}\n"


def scan_footer(end_time: datetime.datetime, end_reason: str, custom: str = "") -> str:
    """The closing ``#C`` lines, with the ``#UVAR`` lines of custom data added while the
    scan ran or after it (Sardana appends the latter after its closing line)."""
    return f"{FOOTER_START.decode()}{end_time.ctime()}\n{custom}#C End reason: {end_reason}\n"

