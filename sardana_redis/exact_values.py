"""Numbers that reach the files bit for bit: a numeric value as the base64 of its bytes.

JSON numbers do not survive every hop of a scan's description: RedisJSON parses and
prints floats itself, and about one float64 in eight comes back with its last bit
changed. A value encoded here is a JSON string (``dtype`` in numpy's array-interface
notation, ``shape``, ``base64``), which every hop carries unchanged; blissdata's
``h5map`` reads the same fields as its ``InlineBase64`` data item.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: The largest value encoded (bytes): bigger snapshot values stay JSON numbers.
MAX_BYTES = 64 * 1024


def encode(value: Any, max_bytes: int = MAX_BYTES) -> dict[str, Any] | None:
    """``{"dtype", "shape", "base64"}`` of a numeric (or bool, as int8) value, as numpy
    (and so h5py) makes an array of it; None for strings, objects and huge values."""
    if isinstance(value, (bool, np.bool_)) or \
            (isinstance(value, np.ndarray) and value.dtype == bool):
        value = np.asarray(value).astype(np.int8)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.dtype.kind not in "iuf" or array.nbytes > max_bytes:
        return None
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "base64": base64.b64encode(array.tobytes(order="C")).decode("ascii")}


def decode(encoded: Any, max_bytes: int = MAX_BYTES) -> np.ndarray | None:
    """The array :func:`encode` encoded; None when ``encoded`` is not one (untrusted input)."""
    if not isinstance(encoded, Mapping):
        return None
    dtype, shape, text = encoded.get("dtype"), encoded.get("shape"), encoded.get("base64")
    if not (isinstance(dtype, str) and isinstance(text, str) and isinstance(shape, list)
            and all(isinstance(d, int) and d >= 0 for d in shape)):
        return None
    try:
        dt = np.dtype(dtype)
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError, binascii.Error):
        return None
    if dt.kind not in "iuf" or dt.itemsize > 8 or len(raw) > max_bytes or \
            len(raw) != dt.itemsize * math.prod(shape):
        return None
    return np.frombuffer(raw, dtype=dt).reshape(shape)
