"""Compressed scalar columns written chunk by chunk (h5py only, no Redis)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from sardana_redis.nexus_writer.h5_layout import (
    MAX_SCALAR_CHUNK, SCALAR_CHUNK, ChunkPacker, Compression, StreamTargets, append, close_packed,
    rows_on_disk, scalar_chunk)
from sardana_redis.nexus_writer.writer import compression_of
from sardana_redis.scan_model import StreamShape


def make(path, chunk=64, swmr=True):
    f = h5py.File(path, "w", libver="latest")
    dset = f.create_dataset("ct", shape=(0,), maxshape=(None,), dtype="float64", chunks=(chunk,),
                            compression="gzip", compression_opts=1, shuffle=True)
    if swmr:
        f.swmr_mode = True
    return f, StreamTargets(numeric={"ct": [dset]})


@pytest.mark.parametrize("npoints,chunk", [(0, SCALAR_CHUNK), (None, SCALAR_CHUNK), (3, 16),
                                           (17, 32), (4096, 4096), (4097, 8192),
                                           (10**9, MAX_SCALAR_CHUNK), (True, SCALAR_CHUNK)])
def test_scalar_chunk_covers_the_declared_points(npoints, chunk):
    assert scalar_chunk(npoints) == chunk


def test_compression_follows_data_compression_rank_and_bounds_held_back_memory():
    shapes = {f"ct{i}": StreamShape("float64", ()) for i in range(1000)}
    shapes["img"] = StreamShape("uint16", (8, 8))
    assert compression_of({"npoints": 10**6, "sardana": {"data_compression_rank": 2}}, {}) == \
        Compression(min_rank=2, scalar_chunk=MAX_SCALAR_CHUNK)
    many = compression_of({"npoints": 10**6}, shapes)
    assert many.min_rank == 1 and many.scalar_chunk * 8 * 1000 <= 64 << 20
    assert not Compression(min_rank=-1).applies(3) and not Compression(min_rank=0).applies(0)
    assert Compression(min_rank=2).applies(3) and not Compression(min_rank=2).applies(1)


def test_points_shown_live_stay_in_place_and_whole_chunks_are_compressed(tmp_path):
    path = tmp_path / "live.h5"
    f, targets = make(path)
    values = np.random.default_rng(1).random(1000)
    for start in range(0, 1000, 10):
        append(targets, {"ct": values[start:start + 10]}, show=True)
        f.flush()
        seen = f["ct"]
        assert seen.shape[0] == start + 10  # every point, as soon as it is shown
        np.testing.assert_array_equal(seen[-10:], values[start:start + 10])
    close_packed(targets)
    f.close()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["ct"][:], values)
    # each chunk shown while partial is rewritten in place: no copies left behind
    assert path.stat().st_size < 1000 * 8 * 1.1 + 16_384


def test_batches_not_shown_are_compressed_once(tmp_path):
    path = tmp_path / "fast.h5"
    f, targets = make(path)
    values = np.arange(1000, dtype="float64") % 7
    for start in range(0, 1000, 100):
        append(targets, {"ct": values[start:start + 100]}, show=False)
        assert rows_on_disk(targets) == (start + 100) // 64 * 64  # whole chunks only
    close_packed(targets)
    assert rows_on_disk(targets) == 1000
    f.close()
    with h5py.File(path, "r") as f:
        dset = f["ct"]
        np.testing.assert_array_equal(dset[:], values)
        assert dset.id.get_storage_size() < 1000 * 8 / 4


def test_a_quiet_live_scan_shows_the_points_held_back(tmp_path):
    f, targets = make(tmp_path / "quiet.h5")
    append(targets, {"ct": np.arange(10.0)}, show=False)
    assert rows_on_disk(targets) == 0
    append(targets, {}, show=True)  # no new point, but time to show them
    assert rows_on_disk(targets) == 10
    np.testing.assert_array_equal(f["ct"][:], np.arange(10.0))
    f.close()


def test_a_resumed_dataset_goes_on_in_its_partial_chunk(tmp_path):
    path = tmp_path / "resumed.h5"
    f, targets = make(path, swmr=False)
    values = np.random.default_rng(2).random(300)
    append(targets, {"ct": values[:100]}, show=True)  # 64 compressed + 36 shown uncompressed
    f.close()
    with h5py.File(path, "a") as f:
        targets = StreamTargets(numeric={"ct": [f["ct"]]})
        packer = ChunkPacker(f["ct"])
        assert (packer.start, len(packer.tail), packer.padded, packer.shown) == (64, 36, True, 36)
        append(targets, {"ct": values[100:]}, show=False)
        close_packed(targets)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["ct"][:], values)


def test_references_to_a_fifo_or_nothing_never_block(tmp_path):
    """The writer reads the first referenced file for the images' shape and dtype: a FIFO
    (or a missing file) is not opened; the column's numeric shape is used, else none."""
    import os

    from sardana_redis.nexus_writer.writer import _H5_REFERENCE, _image_layout

    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    first = _H5_REFERENCE.match(f"h5file://{fifo}::/data")
    assert _image_layout(first, {"shape": [4, 5], "dtype": "str"}) is None
    assert _image_layout(first, {"shape": [4, 5], "dtype": "uint16"}) == ((4, 5), np.dtype("uint16"))
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["data"] = np.zeros((6, 7), dtype="int32")
    real = _H5_REFERENCE.match(f"h5file://{tmp_path / 'img.h5'}::/data")
    assert _image_layout(real, {"dtype": "str"}) == ((6, 7), np.dtype("int32"))
