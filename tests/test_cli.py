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


def test_a_missing_extra_is_named(monkeypatch, capsys):
    """``sardana-redis plot`` installed without its extra says which one to install."""
    from sardana_redis import cli

    def without_matplotlib(args):
        """Write a PNG of one scan's curves."""
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(cli, "cmd_plot", without_matplotlib)
    assert cli.main(["plot", "1"]) == 2
    assert capsys.readouterr().err == ("sardana-redis plot: error: No module named 'matplotlib': "
                                       "install it with pip install 'sardana-redis[plot]'\n")


def test_redis_url_environment_variable_is_the_default(monkeypatch):
    """Every command with --redis-url takes $REDIS_URL when given none."""
    monkeypatch.setenv("REDIS_URL", "redis://example:6390")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    with_url = [name for name, sub in commands.items()
                if any(a.dest == "redis_url" for a in sub._actions) and name != "spool"]
    assert len(with_url) >= 9, with_url
    for name in with_url:
        args = parser.parse_args([name, *(["x"] if name in ("show", "plot", "rewrite") else []),
                                  *(["--root", "/tmp"] if name.endswith("-writer") else [])])
        assert args.redis_url == "redis://example:6390", name
