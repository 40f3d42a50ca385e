"""Numbers as SPEC_FileRecorder writes them (``str(value)`` in the MacroServer), fast.

Sardana writes ``str(value)``: Python's shortest round-tripping ``repr`` for
float64, numpy's shortest text of a float32 for a float32 (``0.1``, not the
widened ``0.10000000149011612``), plain digits for integers, ``True``/``False``,
``nan``/``inf``. Python's ``repr`` costs about 2.5 µs a value; orjson (compiled,
shortest round-trip) formats a whole numpy column in about 0.25 µs a value, with
the same digits wherever both write plain decimals. orjson's text is taken there
(float64: 1e-4 <= |x| < 1e16 and 0; float32: 1e-4 <= |x| < 1e6 and 0, where numpy
switches to exponents). A float64 orjson writes with an exponent keeps orjson's
digits with Python's exponent (``1e-7`` -> ``1e-07``); Python and numpy format the
other values (NaN, infinities, float16, booleans, ...) one by one. The result is the same text as
``str`` gives, value for value (tests/test_number_text.py checks random values,
subnormals, -0.0, NaN and infinities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: Where orjson writes plain decimals identical to Python's / numpy's text: [low, high).
PLAIN_RANGE = {np.dtype(np.float64): (1e-4, 1e16), np.dtype(np.float32): (1e-4, 1e6)}


def _one_by_one(values: np.ndarray) -> list[str]:
    if values.dtype == np.float64:
        return list(map(repr, values.tolist()))
    return [str(v) for v in values]  # numpy's own text of float32, float16, bool...


def _native(values: np.ndarray) -> np.ndarray:
    """C-ordered, in this machine's byte order (what orjson takes)."""
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    return np.ascontiguousarray(values)


def _orjson_tokens(values: np.ndarray) -> list[str]:
    text = orjson.dumps(values, option=_NUMPY).decode("ascii")
    return text[1:-1].split(",")


def _plain(values: np.ndarray) -> np.ndarray:
    """The values orjson writes as Python / numpy do (a boolean mask)."""
    low, high = PLAIN_RANGE[values.dtype]
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values.astype(np.float64))  # the bounds compared in float64
        return (magnitude == 0) | ((magnitude >= low) & (magnitude < high))


def column_text(values: Any) -> list[str]:
    """``str`` of every value of a 1D column, as SPEC_FileRecorder writes each of them."""
    if not isinstance(values, np.ndarray):
        return [repr(v) if isinstance(v, float) else str(v) for v in values]
    values = _native(values).reshape(-1)
    if not len(values):
        return []
    kind = values.dtype.kind
    if kind in "iu" and values.dtype.itemsize <= 8:
        return _orjson_tokens(values)
    if kind != "f" or values.dtype not in PLAIN_RANGE:
        return _one_by_one(values)
    tokens = _orjson_tokens(values)
    plain = _plain(values)
    if not plain.all():
        wide = values.dtype == np.float64
        for i in np.flatnonzero(~plain).tolist():
            token = tokens[i]
            if wide and "e" in token:  # the same digits; Python's exponent: sign, 2+ digits
                mantissa, _, exponent = token.partition("e")
                tokens[i] = f"{mantissa}e{int(exponent):+03d}"
            else:
                tokens[i] = repr(float(values[i])) if wide else str(values[i])
    return tokens


def rows_text(columns: Sequence[Any]) -> list[str]:
    """The data lines (without line ends) of scalar columns of equal length."""
    return list(map(" ".join, zip(*map(column_text, columns), strict=False)))


_COMMA_TO_BLANK = bytes.maketrans(b",", b" ")


def _spectra_at_once(spectra: np.ndarray) -> list[str] | None:
    """The ``@A`` lines of a batch whose every value orjson writes as ``str`` does, made
    from orjson's text of the whole batch (no object per value); None otherwise."""
    spectra = _native(spectra)
    kind = spectra.dtype.kind
    if kind == "f" and _counts(spectra):  # integral floats (counts): integers' text + ".0"
        text = orjson.dumps(spectra.astype(np.int64), option=_NUMPY)
        body = text[2:-2].replace(b",", b".0 ").replace(b"].0 [", b".0 \n@A ")
        return (b"@A " + body + b".0 ").decode("ascii").split("\n")
    if not (kind in "iu" and spectra.dtype.itemsize <= 8) and not (
            kind == "f" and spectra.dtype in PLAIN_RANGE and _plain(spectra).all()):
        return None
    text = orjson.dumps(spectra, option=_NUMPY)  # [[a,b],[c,d]]
    body = text[2:-2].translate(_COMMA_TO_BLANK).replace(b"] [", b" \n@A ")
    return (b"@A " + body + b" ").decode("ascii").split("\n")


def _counts(values: np.ndarray) -> bool:
    """True for floats that are all whole numbers ``str`` writes as ``<integer>.0`` (plain
    range, no NaN, no infinity, no -0.0): what detectors count."""
    if values.dtype not in PLAIN_RANGE or not values.size:
        return False
    with np.errstate(invalid="ignore"):
        if not np.array_equal(values, np.trunc(values)):  # NaN is never equal
            return False
        if not float(np.abs(values).max()) < PLAIN_RANGE[values.dtype][1]:
            return False
    return not np.signbit(values[values == 0]).any()


def spectra_text(spectra: Any) -> list[str]:
    """The ``@A`` lines (without line ends) of a 2D batch of spectra, as SPEC_FileRecorder
    writes them: ``@A``, then each value followed by a blank."""
    if isinstance(spectra, np.ndarray) and spectra.ndim == 2 and spectra.shape[1]:
        lines = _spectra_at_once(spectra)
        if lines is not None:
            return lines
        tokens = column_text(spectra)
        width = spectra.shape[1]
        return ["@A " + " ".join(tokens[i:i + width]) + " " for i in range(0, len(tokens), width)]
    return ["@A " + "".join(f"{v} " for v in column_text(np.asarray(s))) for s in spectra]
