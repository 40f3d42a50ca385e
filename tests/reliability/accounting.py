"""Counting points in and points out: what a reliability case published versus what the
files hold, as one :class:`CaseResult` row of the reliability table.

A scan is identified in the files by a :data:`ScanRef` ``(kind, file, number)``: kind is
``"spec"`` or ``"nexus"``, number the SPEC ``#S`` number or the NeXus ``entryN``.  Each
published point carries its point number (``#Pt No`` / ``Pt_No``), 0 to N-1, which is
how lost and duplicated points are told apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py

ScanRef = tuple[str, str, int]


@dataclass
class CaseResult:
    """One row of the reliability table."""

    case: str
    scans_in: int = 0
    points_in: int = 0
    scans_out: int = 0
    points_out: int = 0
    lost: int = 0
    duplicated: int = 0
    note: str = ""
    figures: dict[str, str] = field(default_factory=dict)  #: extra measurements (lag, memory peak)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0


def spec_points(path: Path) -> dict[int, list[int]]:
    """Point numbers (first column) of every ``#S`` block of a SPEC file, by scan number;
    a number written twice has both blocks' points."""
    found: dict[int, list[int]] = {}
    current: list[int] | None = None
    if not Path(path).exists():
        return found
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("#S "):
            current = found.setdefault(int(line[3:].split()[0]), [])
        elif current is not None and line[:1].isdigit():
            current.append(int(float(line.split()[0])))
    return found


def nexus_points(path: Path) -> dict[int, list[int]]:
    """``measurement/Pt_No`` of every ``entryN`` of a NeXus file, by N."""
    found: dict[int, list[int]] = {}
    if not Path(path).exists():
        return found
    with h5py.File(path, "r", locking=False) as f:
        for name in f:
            if name.startswith("entry") and name[5:].isdigit() and "measurement/Pt_No" in f[name]:
                found[int(name[5:])] = [int(v) for v in f[f"{name}/measurement/Pt_No"][()]]
    return found


def points_in_files(refs: Iterable[ScanRef]) -> dict[ScanRef, list[int]]:
    """What the files hold for each of ``refs`` (each file read once)."""
    cache: dict[tuple[str, str], dict[int, list[int]]] = {}
    out = {}
    for kind, file, number in refs:
        if (kind, file) not in cache:
            reader = spec_points if kind == "spec" else nexus_points
            cache[(kind, file)] = reader(Path(file))
        out[(kind, file, number)] = cache[(kind, file)].get(number, [])
    return out


def tally(case: str, published: Mapping[ScanRef, int],
          written: Mapping[ScanRef, Sequence[int]] | None = None, note: str = "") -> CaseResult:
    """Compare ``published`` (points 0..N-1 per scan and file) with what the files hold.

    ``lost``: published points absent from the file; ``duplicated``: rows beyond the first
    of each published point (repeats, or points nobody published).
    """
    if written is None:
        written = points_in_files(published)
    result = CaseResult(case, note=note)
    for ref, count in published.items():
        expected = set(range(count))
        rows = list(written.get(ref, []))
        good = expected.intersection(rows)
        result.scans_in += 1
        result.points_in += count
        result.points_out += len(good)
        result.scans_out += int(len(good) == count)
        result.lost += count - len(good)
        result.duplicated += len(rows) - len(good)
    return result
