"""Pytest plugin: the reliability table.

Tests record one :class:`~tests.reliability.accounting.CaseResult` per case with the
``reliability`` fixture; the table is printed at the end of the run and, when the
``RELIABILITY_REPORT`` environment variable names a file, written there as Markdown.
``RELIABILITY_SCALE=full`` (``make reliability``) asks the cases for their full load.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.accounting import CaseResult

_results: list[CaseResult] = []
COLUMNS = ("case", "scans in", "points in", "scans out", "points out", "lost", "duplicated")


def full_scale() -> bool:
    """True under ``make reliability``: cases run their full load."""
    return os.environ.get("RELIABILITY_SCALE", "quick") == "full"


class Recorder:
    def record(self, result: CaseResult) -> CaseResult:
        """Add ``result`` to the table (before asserting on it, so failures show too)."""
        _results.append(result)
        return result


@pytest.fixture
def reliability() -> Recorder:
    return Recorder()


def _rows() -> list[list[str]]:
    return [[r.case, *(f"{v:,}" for v in (r.scans_in, r.points_in, r.scans_out, r.points_out,
                                          r.lost, r.duplicated))] for r in _results]


def markdown_table() -> str:
    lines = ["| " + " | ".join(COLUMNS) + " | figures |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for result, row in zip(_results, _rows()):
        extra = "; ".join(f"{k}: {v}" for k, v in result.figures.items())
        if result.note:
            extra = f"{result.note}; {extra}" if extra else result.note
        lines.append("| " + " | ".join(row) + f" | {extra} |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter) -> None:
    if not _results:
        return
    rows = [list(COLUMNS), *_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    terminalreporter.section("reliability: points in vs points in the files")
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        terminalreporter.write_line("  ".join(cells))
        if i == 0:
            terminalreporter.write_line("  ".join("-" * w for w in widths))
    total = CaseResult("total")
    for r in _results:
        total.lost += r.lost
        total.duplicated += r.duplicated
    terminalreporter.write_line(f"{len(_results)} cases, {total.lost} points lost, "
                                f"{total.duplicated} duplicated")
    for r in _results:
        if r.figures or r.note:
            terminalreporter.write_line(f"  {r.case}: " + "; ".join(
                [r.note] * bool(r.note) + [f"{k} {v}" for k, v in r.figures.items()]))
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        Path(target).write_text(markdown_table())
