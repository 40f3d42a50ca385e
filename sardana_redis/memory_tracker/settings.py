"""The memory tracker's settings, declared once.

:class:`TrackerSettings` is the declaration: each field has its default, its help
text and its bounds (:func:`setting`). The command line's options
(``--cleaning-threshold``) and the Tango device's properties
(``cleaning_threshold``) are generated from it (:func:`add_arguments`,
:func:`tango_properties`), and a wrong value raises :class:`SettingError`, which
names the setting so that each front end says it its own way
(``--cleaning-threshold must be ...`` / ``the cleaning_threshold property must be ...``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class SettingError(ValueError):
    """A setting with a wrong value (or missing where it is needed): ``name`` is the field."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name
        self.problem = problem

    def for_command_line(self) -> str:
        return f"--{self.name.replace('_', '-')} {self.problem}"

    def for_tango(self) -> str:
        return f"the {self.name} property {self.problem}"


def parse_memory_size(text: str) -> int:
    """``512mb``, ``4gb``, ``1048576``: bytes (powers of 1024, as Redis reads them)."""
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3, "b": 1}
    text = text.strip().lower()
    number, unit = text.rstrip("kmgb"), text[len(text.rstrip("kmgb")):]
    try:
        value = float(number) * units.get(unit or "b", 0)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"not a memory size: {text!r} (e.g. 512mb, 4gb)")
    return int(value)


@dataclass(frozen=True)
class Spec:
    """How one setting is given and checked."""

    help: str
    kind: str = "number"  #: "number", "names" (a list of names), "memory" (``4gb``)
    low: float | None = None  #: smallest value allowed
    high: float | None = None  #: largest value allowed
    positive: bool = False  #: more than 0
    option: str | None = None  #: the command-line option when not ``--<name>`` (e.g. ``--writer``)

    def check(self, name: str, value: Any) -> None:
        if self.kind != "number" or value is None:
            return
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise SettingError(name, f"must be between {self.low:g} and {self.high:g}")
        if self.positive and value <= 0:
            raise SettingError(name, "must be more than 0")
        if self.low is not None and self.high is None and value < self.low:
            raise SettingError(name, "must not be negative" if self.low == 0 else
                               f"must be at least {self.low:g}")


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A :class:`TrackerSettings` field with its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(help, **spec)})


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
    closed_scan_deletion: int = setting(604800, "expiration of closed scans, in seconds, once saved",
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
        for f in dataclasses.fields(self):
            f.metadata["spec"].check(f.name, getattr(self, f.name))


#: The Python type of each kind of number field (the annotations are strings here).
_NUMBER_TYPES = {"int": int, "float": float}


def specs() -> dict[str, tuple[Spec, Any, type]]:
    """Every setting: its :class:`Spec`, default and type (of numbers), by field name."""
    return {f.name: (f.metadata["spec"], f.default, _NUMBER_TYPES.get(str(f.type), str))
            for f in dataclasses.fields(TrackerSettings)}


def option_of(name: str) -> str:
    """The command-line option of a setting."""
    return specs()[name][0].option or f"--{name.replace('_', '-')}"


def _memory_argument(text: str) -> int:
    try:
        return parse_memory_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of every setting."""
    for name, (spec, default, kind) in specs().items():
        if spec.kind == "names":
            parser.add_argument(option_of(name), dest=name, action="append", help=spec.help)
        elif spec.kind == "memory":
            parser.add_argument(option_of(name), dest=name, type=_memory_argument, help=spec.help)
        else:
            parser.add_argument(option_of(name), dest=name, type=kind, default=default,
                                help=f"{spec.help} (default: %(default)s)")


def from_arguments(args: argparse.Namespace) -> TrackerSettings:
    """The settings of a parsed command line (:class:`SettingError` when one is wrong)."""
    values = {name: getattr(args, name) for name in specs()}
    if values["writers"] is not None:
        values["writers"] = tuple(values["writers"])
    settings = TrackerSettings(**values)
    settings.check()
    return settings


def tango_properties(device_property: Callable[..., Any]) -> dict[str, Any]:
    """The Tango device properties of every setting (same names as the fields)."""
    properties = {}
    for name, (spec, default, kind) in specs().items():
        if spec.kind == "names":
            properties[name] = device_property(dtype=(str,), default_value=[], doc=spec.help)
        elif spec.kind == "memory":
            properties[name] = device_property(dtype=str, default_value="",
                                               doc=f"{spec.help} (empty: Redis' own)")
        else:
            properties[name] = device_property(dtype=kind, default_value=default, doc=spec.help)
    return properties


def from_properties(values: Mapping[str, Any]) -> TrackerSettings:
    """The settings of a device's properties (:class:`SettingError` when one is wrong)."""
    settings: dict[str, Any] = {}
    for name, (spec, _, _) in specs().items():
        value = values[name]
        if spec.kind == "names":
            value = tuple(value) or None
        elif spec.kind == "memory":
            try:
                value = parse_memory_size(value) if value.strip() else None
            except ValueError as exc:
                raise SettingError(name, f"is wrong: {exc}") from None
        settings[name] = value
    result = TrackerSettings(**settings)
    result.check()
    return result
