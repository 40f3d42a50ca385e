"""Custom data: values a macro adds with Sardana's ``addCustomData``.

Sardana hands them to every recorder of the scan, before the scan starts, while
it runs, or after it ended (``ascan_with_addcustomdata``, ``ascanct_midtrigger``).
The publisher carries them in ``scan_info["sardana"]["custom_data"]``: those added
before the scan starts from its creation, the others at its close. Each item
says when it came (:class:`Phase`), its value exactly (:mod:`sardana_redis.exact_values`),
and what Sardana's own recorders would make of it: the ``#UVAR`` line of the SPEC
file (its text is the MacroServer's ``str(value)``, as SPEC_FileRecorder writes it)
and the NeXus path and dtype of NXscanH5_FileRecorder.

:func:`read_custom_data` is the reader's side: it keeps the well-formed items
and says why it left any other out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardana_redis import exact_values

#: SPEC_FileRecorder's line format (Sardana's ``SPEC_CUSTOM_DATA_FORMAT`` custom setting).
DEFAULT_SPEC_FORMAT = "#UVAR {name} {value}\n"
#: NXscanH5_FileRecorder's default place for custom data, relative to the scan's entry.
DEFAULT_NXPATH = "custom_data:NXcollection"
#: Longest name, path or text kept (a custom datum is a label and a value, not a file).
MAX_TEXT = 4096
#: Largest numeric value carried exactly (scan_info is capped at 1 MB by blissdata).
MAX_VALUE_BYTES = 512 * 1024


def encode_value(value: Any) -> dict[str, Any] | None:
    """What is published of a value: text as it is, numbers and numeric arrays exactly
    (:mod:`sardana_redis.exact_values`; a boolean as the integer Sardana stores), None for
    what NXscanH5_FileRecorder cannot store either (boolean arrays, lists of text, objects)."""
    if isinstance(value, str):
        return {"dtype": "str", "data": value[:MAX_TEXT]}
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    elif isinstance(value, np.ndarray) and value.dtype == bool or \
            isinstance(value, (list, tuple)) and \
            any(isinstance(v, (str, bool, np.bool_)) for v in value):
        return None
    return exact_values.encode(value, MAX_VALUE_BYTES)


def decode_value(obj: Any) -> np.ndarray | str:
    """The value :func:`encode_value` published (``ValueError`` when malformed)."""
    if isinstance(obj, Mapping) and obj.get("dtype") == "str":
        text = obj.get("data")
        if isinstance(text, str) and len(text) <= MAX_TEXT:
            return text
        raise ValueError("bad text value")
    value = exact_values.decode(obj, MAX_VALUE_BYTES)
    if value is None:
        raise ValueError("bad numeric value")
    return value


class Phase(str, enum.Enum):
    """When the macro added the value, relative to the scan's records."""

    BEFORE = "before"  #: before the scan started: written with its header
    DURING = "during"  #: while the scan ran
    AFTER = "after"  #: once the scan ended (a fit, a derived column, ...)


@dataclass(frozen=True)
class CustomData:
    """One ``addCustomData(value, name, **kwargs)`` call."""

    name: str
    value: dict[str, Any] | None  #: :func:`encode_value` form; None: not storable in NeXus
    phase: Phase
    spec_line: str | None = None  #: the SPEC line, or None when SPEC_FileRecorder skips it
    nxpath: str = DEFAULT_NXPATH
    dtype: str | None = None  #: the ``dtype`` keyword, when the macro gave one

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "phase": self.phase.value,
                "spec_line": self.spec_line, "nxpath": self.nxpath, "dtype": self.dtype}


def spec_line(value: Any, name: str, fmt: str | None) -> str | None:
    """SPEC_FileRecorder's line for a custom datum, or None where it writes none:
    non-scalar values, names or values holding a line break."""
    if np.ndim(value) > 0:
        return None
    text = str(value)
    if "\n" in text or "\n" in name:
        return None
    fmt = fmt if isinstance(fmt, str) else DEFAULT_SPEC_FORMAT
    if not fmt.endswith("\n"):
        fmt += "\n"
    try:
        return fmt.format(value=text, name=name)
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


def describe_custom_data(value: Any, name: Any, phase: Phase, **kwargs: Any) -> CustomData:
    """What is published of one ``addCustomData`` call (in the MacroServer)."""
    name = str(name)
    nxpath = kwargs.get("nxpath")
    dtype = kwargs.get("dtype")
    return CustomData(
        name=name,
        value=encode_value(value),
        phase=phase,
        spec_line=spec_line(value, name, kwargs.get("spec_custom_fmt", _sardana_spec_format())),
        nxpath=nxpath if isinstance(nxpath, str) and nxpath else DEFAULT_NXPATH,
        dtype=dtype if isinstance(dtype, str) else None,
    )


def _sardana_spec_format() -> str:
    """The MacroServer's ``SPEC_CUSTOM_DATA_FORMAT`` custom setting, else Sardana's default."""
    try:
        from sardana import sardanacustomsettings
    except ImportError:
        return DEFAULT_SPEC_FORMAT
    fmt = getattr(sardanacustomsettings, "SPEC_CUSTOM_DATA_FORMAT", DEFAULT_SPEC_FORMAT)
    return fmt if isinstance(fmt, str) else DEFAULT_SPEC_FORMAT


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ValueError(f"{what} is not a string of 1 to {MAX_TEXT} characters")
    return value


def _line(value: Any) -> str | None:
    """A SPEC comment line: one line, starting with ``#`` (never a data line)."""
    if value is None:
        return None
    line = _text(value, "spec_line")
    body = line[:-1] if line.endswith("\n") else line
    if not body.startswith("#") or not all(c.isprintable() or c == "\t" for c in body):
        raise ValueError("spec_line is not one printable comment line")
    return body + "\n"


def parse_custom_data(obj: Any) -> CustomData:
    """One published item, checked (``ValueError`` says what is wrong)."""
    if not isinstance(obj, Mapping):
        raise ValueError("not a mapping")
    value = obj.get("value")
    if value is not None:
        decode_value(value)  # raises when malformed
    dtype = obj.get("dtype")
    if dtype is not None:
        _text(dtype, "dtype")
    try:
        phase = Phase(obj.get("phase"))
    except ValueError:
        raise ValueError(f"unknown phase {obj.get('phase')!r}") from None
    nxpath = _text(obj.get("nxpath", DEFAULT_NXPATH), "nxpath")
    return CustomData(name=_text(obj.get("name"), "name"), value=value, phase=phase,
                      spec_line=_line(obj.get("spec_line")), nxpath=nxpath, dtype=dtype)


def read_custom_data(info: Mapping[str, Any]) -> tuple[list[CustomData], list[str]]:
    """The custom data a ``scan_info`` carries, and why any item was left out."""
    sardana = info.get("sardana") if isinstance(info, Mapping) else None
    items = sardana.get("custom_data") if isinstance(sardana, Mapping) else None
    if not isinstance(items, list):
        return [], []
    kept, refused = [], []
    for i, obj in enumerate(items):
        try:
            kept.append(parse_custom_data(obj))
        except ValueError as exc:
            refused.append(f"custom data item {i}: {exc}")
    return kept, refused

