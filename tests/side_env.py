"""Side Python environments for third-party clients the tests judge against (Flint, ...).

Built once from PyPI and cached outside git, under ``~/.cache/sardana-redis/``
(``$SARDANA_REDIS_TEST_CACHE`` overrides), one folder per requirement set. A lock
file keeps two test runs from building the same environment at once; a marker file
written last tells a complete environment from one a killed build left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Flint's scan_info parser: the last bliss on PyPI with Flint inside (2.1.2), without
#: the dependencies the parser never imports (PyMca and its fisx, compiled from source,
#: scipy, pandas, PyTango, blissdata...): about 95 s to build cold instead of 220-320 s.
#: The versions are bliss 2.1.2's own bounds. (Flint itself, the GUI, needs the whole
#: ``pip install bliss==2.1.2 "redis-om<1"``: docs/reading.md.)
FLINT_STEPS = (
    ("--no-deps", "bliss==2.1.2"),
    ("silx==2.1.2", "pyqt5>=5.12", "numpy<2,>=1.13", "gevent<23.10,>=20.9.0",
     "greenlet<3.1,>=0.4.17", "redis<5.0.1,>=4", "hiredis<2.4", "louie~=2.0.0",
     "networkx<3.3,>2.4", "matplotlib<3.9,>=3.8", "prompt-toolkit<3.1.0,>=3.0.50",
     "tabulate<0.10", "beartype<0.19", "typing_extensions<4.13", "cffi<1.17", "packaging<24.2",
     "h5py!=3.3,!=3.4,<3.12,>=2.9", "fabio<2024.5,>=0.12", "hdf5plugin<4.5", "pillow<10.5",
     "stompest", "cryptography"),
)
#: bliss 2.1.2 pins numpy<2, gevent<23.10: wheels exist up to Python 3.12
FLINT_PYTHONS = ("python3.11", "python3.12", "python3.10")
BUILD_TIMEOUT = 1800.0
COMPLETE = "complete"


def cache_root() -> Path:
    return Path(os.environ.get("SARDANA_REDIS_TEST_CACHE",
                               Path.home() / ".cache" / "sardana-redis"))


def _base_python(candidates: tuple[str, ...]) -> str:
    return next((found for name in candidates if (found := shutil.which(name))), sys.executable)


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def side_env(name: str, steps: tuple[tuple[str, ...], ...], pythons: tuple[str, ...]) -> Path:
    """The Python of a cached side environment, built if needed by one ``pip install``
    per step (its arguments), with the first of ``pythons`` found.

    Skips the calling test only when the build fails and PyPI is unreachable
    (no network); any other build failure fails it.
    """
    base = _base_python(pythons)
    version = _python_version(base)
    digest = hashlib.sha256(repr((version, steps)).encode()).hexdigest()[:12]
    folder = cache_root() / f"{name}-venv-{digest}"
    python = folder / "bin" / "python"
    if (folder / COMPLETE).exists():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it: wait for it
        if (folder / COMPLETE).exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)  # what a killed build left
        started = time.monotonic()
        log = folder.parent / f"{folder.name}.log"
        with open(log, "w") as out:
            built = subprocess.run([base, "-m", "venv", str(folder)], stdout=out,
                                   stderr=subprocess.STDOUT, timeout=60).returncode == 0
            for step in steps:
                built = built and subprocess.run(
                    [str(python), "-m", "pip", "install", "--disable-pip-version-check", *step],
                    stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT).returncode == 0
        if not built:
            if not _pypi_reachable():
                pytest.skip(f"no network: cannot build the {name} environment from PyPI")
            pytest.fail(f"building the {name} environment failed, see {log}")
        (folder / COMPLETE).write_text(f"{steps!r}\nbuilt in {time.monotonic() - started:.0f} s\n")
    return python


def flint_python() -> Path:
    """Python of the Flint side environment (bliss 2.1.2)."""
    return side_env("flint", FLINT_STEPS, FLINT_PYTHONS)
