"""The SPEC writer's number text: the same as ``str`` (what SPEC_FileRecorder writes)."""

from __future__ import annotations

import numpy as np
import pytest

from sardana_redis.spec_writer.number_text import column_text, rows_text, spectra_text

SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324, 2.2250738585072014e-308,
           1.7976931348623157e308, 1e16, 9999999999999998.0, 1e-4, 0.00009999999999999999,
           1e-5, 1e6, 999999.9, 0.1, 0.30000000000000004, 123456789012345678.0, 1.0, -1.0]


def _random(dtype, n=100_000, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n) * 10.0 ** rng.uniform(-40, 40, size=n)
    with np.errstate(over="ignore"):
        values = np.concatenate([values, SPECIAL]).astype(dtype)
    bits = rng.integers(0, 2**63, size=n // 10, dtype=np.int64)  # any bit pattern of the type
    raw = bits.view(np.float64) if dtype == np.float64 else \
        bits.view(np.dtype(dtype)).reshape(-1)[: n // 10]
    return np.concatenate([values, raw.astype(dtype)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_floats_as_str_writes_them(dtype):
    values = _random(dtype)
    expected = [repr(float(v)) if dtype == np.float64 else str(v) for v in values]
    assert column_text(values) == expected


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint64, np.bool_])
def test_integers_and_booleans(dtype):
    values = np.array([0, 1, 2, 3, 127], dtype=dtype)
    if dtype == np.uint64:
        values = np.append(values, np.uint64(2**64 - 1))
    assert column_text(values) == [str(v) for v in values]


def test_rows_and_spectra_as_sardana_writes_them():
    assert rows_text([np.array([0, 1]), np.array([0.1, np.nan]), np.array([1, 2], np.float32)]) == \
        ["0 0.1 1.0", "1 nan 2.0"]
    spectra = np.array([[1.5, 2.0], [np.inf, -0.0]])
    # SPEC_FileRecorder: "@A " then "%s " for each value
    assert spectra_text(spectra) == ["@A 1.5 2.0 ", "@A inf -0.0 "]
    assert spectra_text(np.zeros((1, 0))) == ["@A "]
    assert column_text(np.array([])) == []


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_spectra_at_once_equal_one_by_one(dtype):
    rng = np.random.default_rng(3)
    for spectra in (rng.poisson(100, size=(7, 33)), rng.random((5, 16)) * 100,
                    np.array([[np.nan, 1.0], [1e-9, 2.0]]), np.array([[0.0, -0.0], [3.0, 1e15]]),
                    np.array([[2.0, 4e6], [np.inf, 1.0]]), np.array([[-5.0, 0.0], [12.0, 7.0]])):
        if dtype == np.int32 and spectra.dtype.kind == "f":
            continue
        spectra = spectra.astype(dtype)
        assert spectra_text(spectra) == ["@A " + "".join(f"{t} " for t in column_text(row))
                                         for row in spectra]


def test_any_byte_order():
    values = np.array([0.1, 1e-9, 3.0], dtype=">f8")
    assert column_text(values) == ["0.1", "1e-09", "3.0"]
    assert column_text(np.array([1, 2], dtype=">i4")) == ["1", "2"]
    assert spectra_text(np.array([[1, 2]], dtype=">i8")) == ["@A 1 2 "]
