"""The spock lines of the docs' code blocks, typed into a real Sardana as spock would send
them (its own parameter parser), then a scan: what they configure is what gets published."""

from __future__ import annotations

import itertools

from sardana.util.parser import ParamParser

from sardana_redis.local_stack.door import DoorClient, MacroResult
from tests.doc_commands import DocCommand, documented_commands
from tests.recorder_helpers import last_scan_id, read_published, run_ok

SESSION = "docs"


def spock_blocks() -> list[list[DocCommand]]:
    """The spock lines of the code blocks, one list per block."""
    lines = [c for c in documented_commands() if c.kind == "spock" and c.in_block]
    blocks: list[list[DocCommand]] = []
    for command in lines:
        previous = blocks[-1][-1] if blocks else None
        if previous is None or previous.doc != command.doc or command.line > previous.line + 3:
            blocks.append([])
        blocks[-1].append(command)
    return blocks


def type_in(door: DoorClient, text: str) -> MacroResult:
    """Run a spock line the way spock does: the parameter parser of its
    ``split_macro_parameters`` (sardana.spock.spockms, which needs IPython), then RunMacro."""
    name, _, parameters = text.partition(" ")
    params_def = door.macro_server.getMacroInfoObj(name).parameters
    result = door.run(name, *ParamParser(params_def).parse(parameters))
    assert result.ok, (text, result.error)
    return result


def replay(door: DoorClient, block: list[DocCommand], values: dict[str, str]) -> list[MacroResult]:
    """Type a block's lines in, with the test's values in place of the site's."""
    results = []
    for command in block:
        text = command.text
        for site, here in values.items():
            text = text.replace(site, here)
        results.append(type_in(door, text))
    return results


def test_documented_spock_lines(door, redis_url, scan_dir, tmp_path):
    blocks = spock_blocks()
    assert [block[0].doc for block in blocks] == ["README.md", "docs/recorder.md"]
    values = {"redis://localhost:6379": redis_url, "/beamline/data/ihch1234": str(scan_dir)}
    door.set_env(RedisSession=SESSION, ScanDir=str(scan_dir))
    counter = itertools.count(1)
    for block in blocks:
        results = replay(door, block, values)
        for command, result in zip(block, results):
            if command.text == "redis_config":
                assert any(redis_url in line for line in result.output), result.output
        run_ok(door, "ascan", "mot01", 0, 1, 2, 0.01)
        folder = tmp_path / f"block{next(counter)}"
        folder.mkdir()
        published = read_published(redis_url, last_scan_id(door), folder, session=SESSION)
        assert published.streams["mot01"].tolist() == [0.0, 0.5, 1.0]
    # The last block routed ScanFile to the recorder: the writers are asked for both files.
    requested = published.info["sardana"]["requested_files"]
    assert requested == [{"path": str(scan_dir / "scans.h5"), "format": "nexus"},
                         {"path": str(scan_dir / "scans.dat"), "format": "spec"}]
    listed = type_in(door, "lsenv")  # troubleshooting.md: check DataRecorder with lsenv
    assert any("DataRecorder" in line for line in listed.output)
