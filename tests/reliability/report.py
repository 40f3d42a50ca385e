"""Pytest plugin: the reliability table.

Tests record one :class:`~tests.reliability.accounting.CaseResult` per case with the
``reliability`` fixture; the table is printed at the end of the run and, when the
``RELIABILITY_REPORT`` environment variable names a file, written there as Markdown.
``RELIABILITY_SCALE=full`` (``make reliability``) asks the cases for their full load.

A result travels in its test's report (``user_properties``, as it stands once the test is
over), so the table is whole when pytest-xdist runs the tests in several processes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from tests.reliability.accounting import CaseResult

COLUMNS = ("case", "scans in", "points in", "scans out", "points out", "lost", "duplicated")
#: The name of the results in the tests' ``user_properties``.
PROPERTY = "reliability"


def full_scale() -> bool:
    """True under ``make reliability``: cases run their full load."""
    return os.environ.get("RELIABILITY_SCALE", "quick") == "full"


class Recorder:
    """What the ``reliability`` fixture gives a test."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node

    def record(self, result: CaseResult) -> CaseResult:
        """Add ``result`` to the table (before asserting on it, so failures show too; what
        the test adds to it afterwards shows too)."""
        self._node.user_properties.append((PROPERTY, result))
        return result


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Recorder:
    return Recorder(request.node)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The results as plain data in the report (what pytest-xdist can send)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties = [(name, dataclasses.asdict(value) if name == PROPERTY else value)
                              for name, value in report.user_properties]


class Table:
    """The rows, from the reports of the tests (this process's or pytest-xdist's workers')."""

    def __init__(self) -> None:
        self.results: list[CaseResult] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.results += [CaseResult(**value) for name, value in report.user_properties
                             if name == PROPERTY]

    def rows(self) -> list[list[str]]:
        return [[r.case, *(f"{v:,}" for v in (r.scans_in, r.points_in, r.scans_out,
                                              r.points_out, r.lost, r.duplicated))]
                for r in self.results]

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " | figures |",
                 "|" + " --- |" * (len(COLUMNS) + 1)]
        for result, row in zip(self.results, self.rows(), strict=True):
            extra = "; ".join(f"{k}: {v}" for k, v in result.figures.items())
            if result.note:
                extra = f"{result.note}; {extra}" if extra else result.note
            lines.append("| " + " | ".join(row) + f" | {extra} |")
        return "\n".join(lines) + "\n"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
            return
        rows = [list(COLUMNS), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        terminalreporter.section("reliability: points in vs points in the files")
        for i, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                 zip(row[1:], widths[1:], strict=True)]
            terminalreporter.write_line("  ".join(cells))
            if i == 0:
                terminalreporter.write_line("  ".join("-" * w for w in widths))
        lost = sum(r.lost for r in self.results)
        duplicated = sum(r.duplicated for r in self.results)
        terminalreporter.write_line(f"{len(self.results)} cases, {lost} points lost, "
                                    f"{duplicated} duplicated")
        for r in self.results:
            if r.figures or r.note:
                terminalreporter.write_line(f"  {r.case}: " + "; ".join(
                    [r.note] * bool(r.note) + [f"{k} {v}" for k, v in r.figures.items()]))
        target = os.environ.get("RELIABILITY_REPORT")
        if target:
            Path(target).write_text(self.markdown())


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Table(), "reliability-table")
