"""One column's raw Sardana values turned into one typed batch per send (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from sardana_redis.publishing.column_batches import ColumnConverter, stream_dtype
from tests.scan_descriptions import column, point_nb, spectrum


@pytest.mark.parametrize(("col", "dtype"), [
    (column("ct01"), "float64"),
    (point_nb(), "int64"),
    (column("flag", dtype="bool"), "bool"),
    (column("name", dtype="str"), "json"),
    (column("odd", dtype="not a dtype"), "json"),
    (column("twod02", dtype="uint16", shape=(4, 4), value_ref=True), "json"),
])
def test_stream_dtype(col, dtype):
    assert stream_dtype(col) == dtype


def test_floats_take_ints_and_none_as_nan():
    converter = ColumnConverter(column("ct01"))
    batch = converter.convert([1, 2.5, None, np.float32(0.5)])
    assert batch.dtype == np.float64 and batch.shape == (4,)
    np.testing.assert_array_equal(batch, [1.0, 2.5, np.nan, 0.5])
    assert converter.placeholders == 0


def test_integers_refuse_nan_and_text_as_counted_zero_placeholders():
    converter = ColumnConverter(point_nb())
    batch = converter.convert([0, 1.0, float("nan"), "x", None, 5])
    assert batch.dtype == np.int64
    assert batch.tolist() == [0, 1, 0, 0, 0, 5]
    assert converter.placeholders == 3
    assert converter.convert(np.arange(3, dtype=np.int32)).tolist() == [0, 1, 2]
    assert converter.placeholders == 3  # a whole good batch: nothing more counted


def test_spectra_of_another_dtype_or_length_become_nan_placeholders():
    converter = ColumnConverter(spectrum("oned01", 4))
    good = np.arange(4, dtype=np.int32)
    batch = converter.convert([good, [1.0, 2.0], None, good * 2])
    assert batch.dtype == np.float64 and batch.shape == (4, 4)
    np.testing.assert_array_equal(batch[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(batch[3], [0, 2, 4, 6])
    assert np.isnan(batch[1]).all() and np.isnan(batch[2]).all()
    assert converter.placeholders == 2


def test_images_keep_their_shape_and_dtype():
    converter = ColumnConverter(column("twod01", dtype="uint16", shape=(2, 3)))
    frames = [np.full((2, 3), i, dtype=np.uint16) for i in range(3)]
    batch = converter.convert(frames)
    assert batch.dtype == np.uint16 and batch.shape == (3, 2, 3)
    assert batch[:, 0, 0].tolist() == [0, 1, 2]


def test_references_are_unwrapped_and_json():
    converter = ColumnConverter(column("twod02", dtype="uint16", shape=(4, 4), value_ref=True))
    refs = [["h5file:///d/f.h5::/data/0"], (np.array(["h5file:///d/f.h5::/data/1"]),), None]
    assert converter.convert(refs) == ["h5file:///d/f.h5::/data/0", "h5file:///d/f.h5::/data/1", None]


def test_json_columns_take_anything_json_can_hold():
    converter = ColumnConverter(column("name", dtype="str"))
    values = ["a", b"b\xff", 3, np.int16(4), np.arange(2), None, object]
    assert converter.convert(values) == ["a", "b\ufffd", 3, 4, [0, 1], None, str(object)]
