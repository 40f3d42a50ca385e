"""Settings declared once, for the command line and for Tango.

A service's settings are one frozen dataclass whose fields are made with
:func:`setting`: each has its default, its help text, its kind and its bounds
(:class:`Spec`). The command line's options (``--cleaning-threshold``) and the Tango
device's properties (``cleaning_threshold``) are generated from it
(:func:`add_arguments`, :func:`tango_properties`), values are read back with
:func:`from_arguments` / :func:`from_properties`, and a wrong value raises
:class:`SettingError`, which names the setting so that each front end says it its own
way (``--cleaning-threshold must be ...`` / ``the cleaning_threshold property must be ...``).

Kinds: ``number`` (an int or a float, as the field's type), ``text``, ``names`` (a list of
names, an option given several times), ``folders`` (absolute folders, an option given
several times) and ``memory`` (``512mb``, ``4gb``: bytes).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3, "b": 1}


class SettingError(ValueError):
    """A setting with a wrong value (or missing where it is needed): ``name`` is the field,
    ``option`` its command-line option."""

    def __init__(self, name: str, problem: str, option: str | None = None) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name
        self.problem = problem
        self.option = option or f"--{name.replace('_', '-')}"

    def for_command_line(self) -> str:
        return f"{self.option} {self.problem}"

    def for_tango(self) -> str:
        return f"the {self.name} property {self.problem}"


def parse_memory_size(text: str) -> int:
    """``512mb``, ``4gb``, ``1048576``: bytes (powers of 1024, as Redis reads them)."""
    text = text.strip().lower()
    number, unit = text.rstrip("kmgb"), text[len(text.rstrip("kmgb")):]
    try:
        value = float(number) * _UNITS.get(unit or "b", 0)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"not a memory size: {text!r} (e.g. 512mb, 4gb)")
    return int(value)


def format_memory_size(size: int) -> str:
    """Bytes as :func:`parse_memory_size` reads them back: ``512mb`` when it is whole."""
    for unit in ("gb", "mb", "kb"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


@dataclass(frozen=True)
class Spec:
    """How one setting is given and checked."""

    help: str
    kind: str = "number"  #: number, text, names, folders or memory
    low: float | None = None  #: smallest value allowed
    high: float | None = None  #: largest value allowed
    positive: bool = False  #: more than 0
    option: str | None = None  #: the command-line option when not ``--<name>`` (e.g. ``--writer``)
    metavar: str | None = None  #: what the command line's help calls the value
    group: str | None = None  #: the command line's group of options, if any

    def check(self, name: str, value: Any, option: str) -> None:
        if self.kind == "folders":
            if not value:
                raise SettingError(name, "is not set: at least one folder is needed", option)
            relative = [str(v) for v in value if not Path(v).is_absolute()]
            if relative:
                raise SettingError(name, f"must be absolute folders, not {', '.join(relative)}",
                                   option)
        if self.kind != "number" or value is None:
            return
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise SettingError(name, f"must be between {self.low:g} and {self.high:g}", option)
        if self.positive and value <= 0:
            raise SettingError(name, "must be more than 0", option)
        if self.low is not None and self.high is None and value < self.low:
            raise SettingError(name, "must not be negative" if self.low == 0 else
                               f"must be at least {self.low:g}", option)


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A settings dataclass field with its :class:`Spec`."""
    return field(default=default, metadata={"spec": Spec(help, **spec)})


@dataclass(frozen=True)
class Declared:
    """One setting of a settings class: its name, :class:`Spec`, default and value type."""

    name: str
    spec: Spec
    default: Any
    type: type

    @property
    def option(self) -> str:
        return self.spec.option or f"--{self.name.replace('_', '-')}"


#: The Python type of each kind of number field (the annotations are strings here).
_NUMBER_TYPES = {"int": int, "float": float}


def declared(cls: type) -> dict[str, Declared]:
    """Every setting of the settings class ``cls``, by field name."""
    return {f.name: Declared(f.name, f.metadata["spec"], f.default,
                             _NUMBER_TYPES.get(str(f.type), str))
            for f in dataclasses.fields(cls)}


def check(settings: Any) -> None:
    """Raise :class:`SettingError` for the first setting of ``settings`` out of its bounds."""
    for item in declared(type(settings)).values():
        item.spec.check(item.name, getattr(settings, item.name), item.option)


def _memory_argument(text: str) -> int:
    try:
        return parse_memory_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser, cls: type,
                  defaults: Mapping[str, Any] | None = None) -> None:
    """The command-line options of every setting of ``cls`` (``defaults``: other defaults
    than the declaration's, e.g. a command's own name)."""
    groups: dict[str, Any] = {}
    for item in declared(cls).values():
        spec, default = item.spec, (defaults or {}).get(item.name, item.default)
        target: Any = parser
        if spec.group:
            title, _, description = spec.group.partition(": ")
            if title not in groups:
                groups[title] = parser.add_argument_group(title, description or None)
            target = groups[title]
        extra: dict[str, Any] = {"dest": item.name}
        if spec.metavar:
            extra["metavar"] = spec.metavar
        if spec.kind in ("names", "folders"):
            target.add_argument(item.option, action="append", help=spec.help,
                                required=spec.kind == "folders", **extra)
        elif spec.kind == "memory":
            shown = f" (default: {format_memory_size(default)})" if default else ""
            target.add_argument(item.option, type=_memory_argument, default=default,
                                help=spec.help + shown, **extra)
        elif spec.kind == "text":
            shown = " (default: %(default)s)" if default else ""
            target.add_argument(item.option, default=default or None, help=spec.help + shown,
                                **extra)
        else:
            target.add_argument(item.option, type=item.type, default=default,
                                help=f"{spec.help} (default: %(default)s)", **extra)


def from_arguments(args: argparse.Namespace, cls: type) -> Any:
    """The settings of a parsed command line (:class:`SettingError` when one is wrong)."""
    values = {}
    for item in declared(cls).values():
        value = getattr(args, item.name)
        if item.spec.kind in ("names", "folders"):
            value = tuple(str(v) for v in value) if value else item.default
        elif item.spec.kind == "text":
            value = value or ""
        values[item.name] = value
    settings = cls(**values)
    check(settings)
    return settings


def tango_properties(device_property: Callable[..., Any], cls: type) -> dict[str, Any]:
    """The Tango device properties of every setting of ``cls`` (named as the fields)."""
    properties = {}
    for item in declared(cls).values():
        spec = item.spec
        if spec.kind in ("names", "folders"):
            properties[item.name] = device_property(dtype=(str,), default_value=[], doc=spec.help)
        elif spec.kind == "memory":
            default = format_memory_size(item.default) if item.default else ""
            properties[item.name] = device_property(
                dtype=str, default_value=default,
                doc=spec.help if default else f"{spec.help} (empty: Redis' own)")
        elif spec.kind == "text":
            properties[item.name] = device_property(dtype=str, default_value=item.default or "",
                                                    doc=spec.help)
        else:
            properties[item.name] = device_property(dtype=item.type, default_value=item.default,
                                                    doc=spec.help)
    return properties


def from_properties(values: Mapping[str, Any], cls: type) -> Any:
    """The settings of a device's properties (:class:`SettingError` when one is wrong)."""
    settings: dict[str, Any] = {}
    for item in declared(cls).values():
        value = values[item.name]
        if item.spec.kind in ("names", "folders"):
            value = tuple(value) or item.default
        elif item.spec.kind == "memory":
            try:
                value = parse_memory_size(value) if value.strip() else item.default
            except ValueError as exc:
                raise SettingError(item.name, f"is wrong: {exc}", item.option) from None
        settings[item.name] = value
    result = cls(**settings)
    check(result)
    return result
