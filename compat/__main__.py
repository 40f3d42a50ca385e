"""``make test-compat``: the recorder, writer, tracker and scan_info tests in side
environments holding the oldest and the newest supported combination.

Each side environment is a virtualenv of a pyenv/system Python (``python3.10``,
``python3.13``) with this project installed from ``pyproject.toml`` under the pins of
``compat/<name>.txt`` (so the project's bounds must accept them), then uninstalled: the
tests run the source tree (``PYTHONPATH``), in every process they start. It is cached under
``~/.cache/sardana-redis/compat/<name>-<hash>`` (``$SARDANA_REDIS_COMPAT_CACHE``), the hash
of the pins, ``pyproject.toml`` and the Python version: a rerun only runs the tests.

Two servers come from the main environment (the one running this module): the Tango
database (PyTango 10.3's DataBaseds; a database serves any client version) and the Redis
Stack binaries. Usage: ``python -m compat [--only NAME] [--rebuild] [-- PYTEST ARGS]``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "compat"
CACHE_ENV = "SARDANA_REDIS_COMPAT_CACHE"

#: The tests run in each side environment: the recorder with a real Sardana, both writers
#: on Sardana scans (compared with Sardana's own recorders), the memory tracker, scan_info.
TESTS = (
    "tests/test_scan_info.py",
    "tests/test_recorder_sardana.py",
    "tests/test_spec_writer_sardana.py",
    "tests/test_nexus_writer_sardana.py",
    "tests/test_memory_tracker.py",
)
#: Tests of those files not run there, with why.
DESELECTED = {
    # blisswriter 3.0 (the ESRF NeXus writer, a third-party client) needs blissdata 2.4:
    # it is compared with ours in the main environment only
    "tests/test_nexus_writer_sardana.py::test_blisswriter_and_this_writer_agree",
}
#: Versions shown in the summary.
SHOWN = ("sardana", "pytango", "blissdata", "redis", "numpy", "h5py", "pydantic", "taurus")


@dataclass(frozen=True)
class Combo:
    """One side environment: a Python version and a file of pins."""

    name: str
    python: str  #: "3.10"

    @property
    def pins(self) -> Path:
        return HERE / f"{self.name}.txt"


COMBOS = (Combo("oldest", "3.10"), Combo("newest", "3.13"))


def find_python(version: str) -> str:
    """An interpreter of Python ``version``: ``pythonX.Y`` on PATH, else pyenv's, else
    ``/usr/bin``. Exits with what to install when there is none."""
    candidates = [shutil.which(f"python{version}")]
    for pattern in (f"{os.environ.get('PYENV_ROOT', '~/.pyenv')}/versions/{version}*/bin/python{version}",
                    f"/root/.pyenv/versions/{version}*/bin/python{version}",
                    f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        candidates += sorted(glob.glob(os.path.expanduser(pattern)), reverse=True)
    for candidate in filter(None, candidates):
        out = subprocess.run([candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    raise SystemExit(f"test-compat: no Python {version} with venv found (looked for python{version} "
                     "on PATH, in ~/.pyenv/versions and /usr/bin): install it, e.g. "
                     f"'pyenv install {version}'")


def env_dir(combo: Combo, python: str) -> Path:
    """The cache folder of ``combo``: named after a hash of what it is built from."""
    full_version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                                  capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256()
    for part in (full_version.encode(), combo.pins.read_bytes(), (ROOT / "pyproject.toml").read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sardana-redis" / "compat")
    return cache / f"{combo.name}-{digest.hexdigest()[:12]}"


def build(combo: Combo, rebuild: bool) -> Path:
    """The side environment of ``combo``, built unless cached; its folder."""
    python = find_python(combo.python)
    folder = env_dir(combo, python)
    done = folder / ".complete"
    if done.exists() and not rebuild:
        print(f"==> {combo.name}: cached environment {folder}", flush=True)
        return folder
    # Virtualenv scripts hold absolute paths: build in place, mark complete at the end.
    shutil.rmtree(folder, ignore_errors=True)
    for stale in folder.parent.glob(f"{combo.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    print(f"==> {combo.name}: building {folder} with {python} and {combo.pins.name}", flush=True)
    started = time.monotonic()
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="sardana-redis-src-") as src:
        # a copy: pip builds in the source folder, which must stay free of build/ and egg-info
        shutil.copytree(ROOT / "sardana_redis", Path(src) / "sardana_redis",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy(ROOT / name, src)
        subprocess.run([*pip, "install", "--quiet", "-r", str(combo.pins),
                        f"{src}[writers,tracker]"], check=True)
    subprocess.run([*pip, "uninstall", "--quiet", "--yes", "sardana-redis"], check=True)
    freeze = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True).stdout
    (folder / "freeze.txt").write_text(freeze)
    done.write_text(freeze)
    print(f"    built in {time.monotonic() - started:.0f} s", flush=True)
    return folder


def versions(folder: Path) -> str:
    """``python 3.10.13, sardana 3.5.2, ...`` of a built side environment."""
    found = {}
    for line in (folder / "freeze.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        found[name.lower()] = version
    python = (folder / "pyvenv.cfg").read_text().split("version = ", 1)[1].split()[0]
    return ", ".join([f"python {python}"] + [f"{n} {found.get(n, '?')}" for n in SHOWN])


def main_environment() -> dict[str, str]:
    """What the side environments take from this one: Redis Stack, Tango database."""
    sys.path.insert(0, str(ROOT))
    from sardana_redis.local_stack.tango_db import TANGO_DB_PYTHON_ENV
    from sardana_redis.redis_stack import STACK_DIR_ENV, find_redis_stack

    return {STACK_DIR_ENV: str(find_redis_stack().root), TANGO_DB_PYTHON_ENV: sys.executable}


def run_tests(combo: Combo, folder: Path, pytest_args: list[str]) -> bool:
    """The compat tests in ``folder``'s environment; True when they pass."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TANGO_HOST", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(main_environment(), PYTHONPATH=str(ROOT), PATH=f"{folder / 'bin'}:{env['PATH']}")
    cmd = [str(folder / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
           f"--basetemp={ROOT / '.pytest-tmp' / ('compat-' + combo.name)}", "-q",
           *(pytest_args or [*TESTS, *(f"--deselect={t}" for t in sorted(DESELECTED))])]
    print(f"==> {combo.name}: {versions(folder)}\n    {' '.join(cmd[2:])}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__)
    parser.add_argument("--only", choices=[c.name for c in COMBOS], action="append",
                        help="only this combination (repeat; default: all)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached environments")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest arguments instead of "
                                                       "the compat tests")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    for combo in COMBOS:
        if args.only and combo.name not in args.only:
            continue
        t0 = time.monotonic()
        folder = build(combo, args.rebuild)
        ok = run_tests(combo, folder, args.pytest_args)
        results.append((combo, folder, ok, time.monotonic() - t0))
    print("==> test-compat summary")
    for combo, folder, ok, took in results:
        print(f"    {combo.name}: {'PASSED' if ok else 'FAILED'} in {took:.0f} s: {versions(folder)}")
    print(f"    total {time.monotonic() - started:.0f} s")
    return 0 if all(ok for *_, ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
