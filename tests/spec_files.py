"""Reading SPEC files back, for comparisons with Sardana's SPEC_FileRecorder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SpecScan:
    number: int
    title: str
    labels: list[str] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)
    spectra: list[list[float]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)


def read_spec(path: Path) -> list[SpecScan]:
    """Every scan block of a SPEC file, in order."""
    scans: list[SpecScan] = []
    for line in path.read_text().splitlines():
        if line.startswith("#S "):
            number, _, title = line[3:].partition(" ")
            scans.append(SpecScan(int(number), title))
        elif not scans or not line.strip():
            continue
        elif line.startswith("#L "):
            scans[-1].labels = line[3:].split()
        elif line.startswith("#"):
            scans[-1].header.append(line)
        elif line.startswith("@A "):
            scans[-1].spectra.append([float(v) for v in line[3:].split()])
        else:
            scans[-1].rows.append([float(v) for v in line.split()])
    return scans


def scan_block(path: Path, number: int) -> SpecScan:
    blocks = [s for s in read_spec(path) if s.number == number]
    assert len(blocks) == 1, f"{len(blocks)} blocks for scan #{number} in {path}"
    return blocks[0]


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def assert_same_scan(ours: SpecScan, oracle: SpecScan) -> None:
    """Same title, labels, data lines and @A lines, value by value."""
    assert ours.title == oracle.title
    assert ours.labels == oracle.labels
    assert len(ours.rows) == len(oracle.rows), (len(ours.rows), len(oracle.rows))
    for i, (a, b) in enumerate(zip(ours.rows, oracle.rows)):
        assert _same(a, b), (i, a, b)
    assert len(ours.spectra) == len(oracle.spectra)
    for i, (a, b) in enumerate(zip(ours.spectra, oracle.spectra)):
        assert _same(a, b), (i, a[:5], b[:5])


#: Lines our SPEC writer adds on purpose (docs/writers.md, "Differences kept on purpose").
OURS_ONLY = ("#C End reason: ", "#C Continued from", )


def block_lines(path: Path, number: int) -> list[str]:
    """The lines of scan block ``number``, from its ``#S`` line to the next block's (blank
    lines between blocks left out)."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("#S "):
            inside = line.startswith(f"#S {number} ")
        if inside and line:
            lines.append(line)
    return lines


def assert_same_block_text(ours: Path, oracle: Path, number: int) -> None:
    """Scan ``number`` is the same text in both files, but for the lines we add on purpose
    (and the note of streams SPEC cannot hold)."""
    mine = [line for line in block_lines(ours, number)
            if not line.startswith(OURS_ONLY) and not line.endswith(": not written in SPEC (2D or referenced data)")]
    theirs = block_lines(oracle, number)
    assert mine == theirs, "\n".join(
        f"{i}: ours {a!r}\n{i}: Sardana {b!r}" for i, (a, b) in enumerate(zip(mine, theirs)) if a != b)
