"""Helpers for recorder tests: run a scan with Sardana's NeXus oracle, read it back, compare."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sardana_redis.local_stack.door import DoorClient, MacroResult
from sardana_redis.publishing.scan_info import validate_scan_info
from sardana_redis.scan_model import sanitize_dataset_name

SESSION = "tests"
ORACLE = "oracle.h5"


@dataclass
class PublishedScan:
    """A scan as a separate blissdata reader process saw it."""

    meta: dict
    streams: dict[str, np.ndarray]

    @property
    def info(self) -> dict:
        return self.meta["info"]


def configure(door: DoorClient, redis_url: str, scan_dir: Path, *, oracle: bool = True,
              **extra) -> None:
    """Publish with RedisBlissRecorder (DataRecorder) and write Sardana's NeXus oracle file."""
    env = dict(RedisURL=redis_url, DataRecorder=["RedisBlissRecorder"], RedisSession=SESSION,
               ScanDir=str(scan_dir), ScanFile=[ORACLE] if oracle else [],
               ScanRecorder=["NXscanH5_FileRecorder"] if oracle else [])
    env.update(extra)
    door.set_env(**env)


def last_scan_id(door: DoorClient) -> int:
    """Sardana's ScanID: the number of the last scan (0 before the first one)."""
    try:
        return int(door.get_env("ScanID"))
    except KeyError:
        return 0


def read_published(redis_url: str, number: int, tmp_path: Path, session: str = SESSION,
                   timeout: float = 30.0) -> PublishedScan:
    """Read scan ``number`` back through blissdata, in another process; its scan_info must validate."""
    out = tmp_path / f"scan{number}.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.blissdata_reader", redis_url, session, str(number),
         str(out), str(timeout)],
        capture_output=True, text=True, timeout=timeout + 30,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as npz:
        streams = {name: npz[name] for name in npz.files}
    published = PublishedScan(json.loads(proc.stdout), streams)
    validate_scan_info(published.info)
    return published


def oracle_measurement(scan_dir: Path, number: int) -> dict[str, np.ndarray]:
    """Datasets of ``entry<number>/measurement`` written by NXscanH5_FileRecorder."""
    with h5py.File(scan_dir / ORACLE, "r", locking=False) as f:
        meas = f[f"entry{number}/measurement"]
        return {name: meas[name][()] for name, item in meas.items()
                if isinstance(item, h5py.Dataset)}


def assert_same_data(published: PublishedScan, oracle: dict[str, np.ndarray]) -> None:
    """Every column Sardana wrote equals the published stream, value by value."""
    by_dataset = {sanitize_dataset_name(name): name for name in published.streams}
    assert set(by_dataset) == set(oracle), (sorted(by_dataset), sorted(oracle))
    for dataset, expected in oracle.items():
        actual = published.streams[by_dataset[dataset]]
        assert actual.shape == expected.shape, (dataset, actual.shape, expected.shape)
        np.testing.assert_array_equal(actual, expected.astype(actual.dtype), err_msg=dataset)


def run_ok(door: DoorClient, macro: str, *params, timeout: float = 120.0) -> MacroResult:
    """Run a macro that must finish normally, without RedisBlissRecorder warnings."""
    result = door.run(macro, *params, timeout=timeout)
    assert result.ok, (result.status, result.error)
    assert not [w for w in result.warning if "RedisBlissRecorder" in w], result.warning
    return result
