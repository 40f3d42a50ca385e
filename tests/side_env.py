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

#: Flint's scan_info parser: the last bliss on PyPI with Flint inside. Without the
#: redis-om pin its blissdata 1.1 fails to load any scan (platform-facts.md section 7).
FLINT_REQUIREMENTS = ("bliss==2.1.2", "redis-om<1")
#: bliss 2.1.2 pins numpy<2, scipy<1.14, gevent<23.10: wheels exist up to Python 3.12
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


def side_env(name: str, requirements: tuple[str, ...], pythons: tuple[str, ...]) -> Path:
    """The Python of a cached side environment with ``requirements``, built if needed.

    Skips the calling test only when the build fails and PyPI is unreachable
    (no network); any other build failure fails it.
    """
    base = _base_python(pythons)
    version = _python_version(base)
    digest = hashlib.sha256("\n".join((version, *requirements)).encode()).hexdigest()[:12]
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
            built = built and subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                 *requirements],
                stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT).returncode == 0
        if not built:
            if not _pypi_reachable():
                pytest.skip(f"no network: cannot build the {name} environment from PyPI")
            pytest.fail(f"building the {name} environment failed, see {log}")
        (folder / COMPLETE).write_text(f"{' '.join(requirements)}\n"
                                       f"built in {time.monotonic() - started:.0f} s\n")
    return python


def flint_python() -> Path:
    """Python of the Flint side environment (bliss 2.1.2)."""
    return side_env("flint", FLINT_REQUIREMENTS, FLINT_PYTHONS)
