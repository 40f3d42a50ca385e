"""The `sardana-redis` entry point: --version and --help everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sardana_redis import __version__
from sardana_redis.cli import build_parser


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sardana_redis", *args],
                          capture_output=True, text=True, timeout=60)


def test_version():
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"sardana-redis {__version__}"


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: sardana-redis {command}" in capsys.readouterr().out
