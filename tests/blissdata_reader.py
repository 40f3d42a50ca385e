"""Read one scan back through blissdata's public API, in its own process.

    python -m tests.blissdata_reader URL SESSION NUMBER OUT.npz [TIMEOUT]

Waits until the scan numbered NUMBER of SESSION is CLOSED, then prints a JSON
document (key, identity, state, info, stream dtypes/shapes) and saves every
stream's values in OUT.npz (JSON streams as arrays of JSON strings).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from blissdata.redis_engine.scan import ScanState

from sardana_redis.datastore import open_data_store


def _values(stream) -> np.ndarray:
    data = stream[:]
    if isinstance(data, np.ndarray):
        return data
    return np.array([json.dumps(v) for v in data], dtype=str)


def read_scan(url: str, session: str, number: int, out: str, timeout: float = 30.0) -> dict:
    store = open_data_store(url, init=False)
    deadline = time.monotonic() + timeout
    while True:
        _, keys = store.search_existing_scans(session=session, number=number)
        if keys:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no scan {session} #{number}")
        time.sleep(0.1)
    if len(keys) != 1:
        raise AssertionError(f"{len(keys)} scans for {session} #{number}: {keys}")
    scan = store.load_scan(keys[0])
    while scan.state < ScanState.CLOSED:
        scan.update(timeout=max(deadline - time.monotonic(), 0.1))
        if time.monotonic() > deadline:
            break
    arrays = {name: _values(stream) for name, stream in scan.streams.items()}
    np.savez(out, **arrays)
    return {
        "key": scan.key,
        "identity": {k: getattr(scan, k) for k in
                     ("name", "number", "session", "proposal", "collection", "dataset", "path")},
        "state": scan.state.name,
        "info": scan.info,
        "streams": {name: {"dtype": a.dtype.name, "shape": list(a.shape)}
                    for name, a in arrays.items()},
    }


if __name__ == "__main__":
    url, session, number, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    json.dump(read_scan(url, session, number, out, timeout), sys.stdout)
