"""The tests' own layout: what tests share lives in helper modules, never in a test module.

A test module imported by another one runs its fixtures and module-level code in both and
ties their fates; shared factories and helpers go in ``tests/<helper>.py`` modules
(``scan_descriptions``, ``nexus_files``, ``tango_servers``...).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.python_sources import parse_python

ROOT = Path(__file__).resolve().parent.parent
IMPORTERS = sorted([*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")])


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parts[:-1])


def imported_modules(source: str, package: str) -> set[str]:
    """Dotted names of the project modules a module of ``package`` imports (relative imports
    resolved; ``from A import b`` counts both ``A`` and ``A.b``)."""
    modules = set()
    for node in ast.walk(parse_python(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            modules.add(base)
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in modules if m.split(".")[0] in ("tests", "benchmarks")}


def is_test_module(module: str) -> bool:
    return module.rsplit(".", 1)[-1].startswith("test_") and \
        ROOT.joinpath(*module.split(".")).with_suffix(".py").is_file()


def test_no_module_imports_a_test_module():
    offenders = {str(path.relative_to(ROOT)):
                 sorted(filter(is_test_module, imported_modules(path.read_text(), package_of(path))))
                 for path in IMPORTERS}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_check_sees_every_import_form():
    forms = ["from tests.test_scan_info import x", "from .test_accounting import y",
             "from . import test_load", "import tests.test_cli", "from .. import test_spool",
             "from tango.test_context import DeviceTestContext", "from tests.scan_descriptions import z"]
    found = sorted(filter(is_test_module, imported_modules("\n".join(forms), "tests.reliability")))
    assert found == ["tests.reliability.test_accounting", "tests.reliability.test_load",
                     "tests.test_cli", "tests.test_scan_info", "tests.test_spool"]
