"""Another program reading an HDF5 file, as silx view, PyMca or h5py scripts do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Opens the file for reading with HDF5's default file locking (retrying while it cannot,
#: e.g. while a writer has it without SWMR), lists its entries, keeps it open until its
#: stdin is closed.
READER = """
import sys, time, h5py
path, swmr = sys.argv[1], sys.argv[2] == "swmr"
deadline = time.monotonic() + 30
while True:
    try:
        f = h5py.File(path, "r", swmr=True) if swmr else h5py.File(path, "r")
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.02)
print("opened", *sorted(f), flush=True)
sys.stdin.read()
f.close()
"""


class Reader:
    """A separate process holding ``path`` open with ``h5py.File(path, "r")``, or with
    ``swmr=True``, until :meth:`release`."""

    def __init__(self, path: Path, swmr: bool) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", READER, str(path), "swmr" * swmr],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.opened = self.proc.stdout.readline()
        assert self.opened.startswith("opened"), f"the reader could not open {path}"

    def release(self) -> None:
        """The user closes the file (or the viewer)."""
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
