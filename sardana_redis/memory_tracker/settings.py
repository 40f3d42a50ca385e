"""The memory tracker's settings, declared once (:mod:`sardana_redis.settings`).

:class:`TrackerSettings` is the declaration: each field has its default, its help
text and its bounds. The command line's options (``--cleaning-threshold``) and the
Tango device's properties (``cleaning_threshold``) are generated from it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sardana_redis import settings
from sardana_redis.settings import SettingError, Spec, parse_memory_size, setting

__all__ = ["SettingError", "TrackerSettings", "add_arguments", "from_arguments", "from_properties",
           "option_of", "parse_memory_size", "specs", "tango_properties"]


@dataclass(frozen=True)
class TrackerSettings:
    """The options of ``sardana-redis memory-tracker`` (blissdata's, plus the writers)."""

    cleaning_threshold: int = setting(80, "percentage of maxmemory that triggers cleaning",
                                      low=1, high=100)
    unsaved_threshold: int = setting(
        0, "percentage of maxmemory above which data no writer has saved yet is dropped to "
           "keep Redis alive; 0: never, publishers keep what a full Redis refuses in their spool",
        low=0, high=100)
    protected_history: float = setting(180, "seconds of recent unsaved data dropped only as a "
                                            "last resort", low=0)
    monitoring_period: float = setting(30, "seconds between cycles while memory is low",
                                       positive=True)
    inactive_scan_deletion: float = setting(86400, "seconds without activity before an open "
                                                   "scan is closed as FAILURE", positive=True)
    publisher_timeout: float = setting(
        60, "seconds without data nor heartbeat from its publisher (sardana-redis recorders) "
            "before an open scan is closed as FAILURE", positive=True)
    closed_scan_deletion: int = setting(604800,
                                        "expiration of closed scans, in seconds, once saved",
                                        positive=True)
    cleaning_time_slice: int = setting(20, "percentage of the oldest unsaved live history dropped "
                                           "per step when nothing else is left", low=1, high=100)
    writers: tuple[str, ...] | None = setting(
        None, "writer names whose unsaved data is kept (none given: every writer that ever "
              "followed this Redis)", kind="names", option="--writer")
    max_memory: int | None = setting(None, "memory limit when Redis has no maxmemory, e.g. 4gb",
                                     kind="memory")
    writer_grace: float = setting(
        86400, "seconds a writer that is not alive (no heartbeat) is still waited for; then "
               "the scans it has not written expire without it, logged as ERROR", low=0)

    def check(self) -> None:
        """Raise :class:`SettingError` for the first setting out of its bounds."""
        settings.check(self)


def specs() -> dict[str, tuple[Spec, Any, type]]:
    """Every setting: its :class:`Spec`, default and type (of numbers), by field name."""
    return {name: (item.spec, item.default, item.type)
            for name, item in settings.declared(TrackerSettings).items()}


def option_of(name: str) -> str:
    """The command-line option of a setting."""
    return settings.declared(TrackerSettings)[name].option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of every setting."""
    settings.add_arguments(parser, TrackerSettings)


def from_arguments(args: argparse.Namespace) -> TrackerSettings:
    """The settings of a parsed command line (:class:`SettingError` when one is wrong)."""
    return settings.from_arguments(args, TrackerSettings)


def tango_properties(device_property: Callable[..., Any]) -> dict[str, Any]:
    """The Tango device properties of every setting (same names as the fields)."""
    return settings.tango_properties(device_property, TrackerSettings)


def from_properties(values: Mapping[str, Any]) -> TrackerSettings:
    """The settings of a device's properties (:class:`SettingError` when one is wrong)."""
    return settings.from_properties(values, TrackerSettings)
