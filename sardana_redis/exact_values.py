"""Values carried exactly through ``scan_info`` (JSON kept by RedisJSON).

RedisJSON does not keep every float: its number parser is not correctly rounded,
and about one float64 in seven comes back changed in its last bit. Values that
must reach the files bit for bit (custom data, snapshots) are therefore carried
as typed, base64-encoded bytes: ``{"dtype": "<f8", "shape": [3], "b64": "..."}``;
strings as ``{"dtype": "str", "data": ...}``.

:func:`decode` is the reader's side: what it returns has a numeric dtype of at
most 8 bytes per item, or is text; anything else raises ``ValueError``. Sizes
are checked against the bytes actually carried, so a declared shape cannot make
a reader allocate more than the scan_info holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np

#: numpy kinds carried as bytes: bool, signed and unsigned ints, floats.
NUMERIC_KINDS = "biuf"
#: Most items a decoded value may hold (bytes are bounded by scan_info's 1 MB cap anyway).
MAX_ITEMS = 1 << 20


def encode(value: Any) -> dict[str, Any] | None:
    """The exact JSON form of a number, a numeric array, a string or a list of
    strings; None for anything else (objects, ragged lists, complex numbers)."""
    if isinstance(value, str):
        return {"dtype": "str", "data": value}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return {"dtype": "str", "shape": [len(value)], "data": list(value)}
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if array.dtype.kind not in NUMERIC_KINDS or array.dtype.itemsize > 8:
        return None
    return {"dtype": array.dtype.str, "shape": list(array.shape),  # tobytes: C order
            "b64": base64.b64encode(array.tobytes()).decode("ascii")}


def decode(obj: Any) -> np.ndarray | np.generic | str | list[str]:
    """The value :func:`encode` carried (a numpy scalar for shape ``[]``).

    Raises ``ValueError`` for anything malformed: unknown dtype, a shape that does
    not match the bytes, too many items.
    """
    if not isinstance(obj, Mapping):
        raise ValueError("an encoded value is not a mapping")
    dtype, shape = obj.get("dtype"), obj.get("shape", [])
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                              and 0 <= n <= MAX_ITEMS for n in shape):
        raise ValueError(f"bad shape {shape!r}")
    if dtype == "str":
        data = obj.get("data")
        if not shape and isinstance(data, str):
            return data
        if len(shape) == 1 and isinstance(data, list) and len(data) == shape[0] \
                and all(isinstance(v, str) for v in data):
            return list(data)
        raise ValueError("bad text value")
    try:
        numeric = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        numeric = None
    if numeric is None or numeric.kind not in NUMERIC_KINDS or numeric.itemsize > 8:
        raise ValueError(f"unsupported dtype {dtype!r}")
    try:
        raw = base64.b64decode(obj.get("b64", ""), validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ValueError(f"bad base64 data: {exc}") from None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > MAX_ITEMS or count * numeric.itemsize != len(raw):
        raise ValueError(f"{len(raw)} bytes do not hold a {dtype} array of shape {shape}")
    array = np.frombuffer(raw, dtype=numeric).reshape(shape)
    return array[()] if not shape else array.copy()
