"""docs/configuration.md lists every command-line option and every Tango property."""

from __future__ import annotations

from pathlib import Path

from tango.server import device_property

from sardana_redis.cli import build_parser
from sardana_redis.memory_tracker.tango_server import RedisMemoryTracker
from sardana_redis.tango_writers import RedisSpecWriter

DOC = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()


def test_every_command_line_option_is_documented():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = []
    for name, sub in commands.items():
        section = DOC.split(f"### `sardana-redis {name}`", 1)
        if len(section) != 2:
            missing.append(name)
            continue
        text = section[1].split("###", 1)[0]
        for action in sub._actions:
            if action.dest != "help":
                key = ", ".join(action.option_strings) or action.dest.upper()
                if f"`{key}`" not in text:
                    missing.append(f"{name} {key}")
    assert not missing, missing


def test_every_tango_property_is_documented():
    missing = []
    for cls in (RedisSpecWriter, RedisMemoryTracker):
        for klass in cls.__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, device_property) and f"| `{name}` |" not in DOC:
                    missing.append(f"{cls.__name__}.{name}")
    assert not missing, missing
