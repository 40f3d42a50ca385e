"""The commands the Markdown documentation shows: shell lines and spock (macro) lines.

:func:`documented_commands` reads ``README.md`` and ``docs/**/*.md`` and returns every
command of a fenced code block (``bash``/``sh`` blocks, and unlabelled blocks for the
lines that start with a known program or macro) and of an inline code span that starts
with a known program or macro. ``ini`` blocks (systemd units) are not commands: their
``ExecStart=`` lines are run by ``tests/test_systemd_units.py``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Programs whose command lines the documentation may show.
PROGRAMS = frozenset({
    "sardana-redis", "RedisSpecWriter", "RedisNexusWriter", "RedisMemoryTracker", "make",
    "pip", "python", "docker", "systemctl", "journalctl", "redis-cli", "silx", "install",
    "printf",
})
#: Sardana's own macros used in the docs (the project's come from sardana_redis/macros).
SARDANA_MACROS = frozenset({"senv", "usenv", "lsenv", "ascan", "dscan", "ct", "defmeas",
                            "plotselect"})
_SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
_FENCE = re.compile(r"^\s*```(\S*)")
_INLINE = re.compile(r"`([^`]+)`")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


def project_macros() -> frozenset[str]:
    """Names of the macros in ``sardana_redis/macros``."""
    names = set()
    for path in (ROOT / "sardana_redis" / "macros").glob("*.py"):
        names.update(re.findall(r"^class (\w+)\(Macro\)", path.read_text(), re.M))
    return frozenset(names)


MACROS = SARDANA_MACROS | project_macros()


@dataclass(frozen=True)
class DocCommand:
    """One command as the documentation shows it."""

    doc: str        # path relative to the repository, e.g. "docs/deployment.md"
    line: int       # 1-based line where it starts
    text: str       # the command line, continuation lines joined, comment removed
    kind: str       # "shell" or "spock"
    in_block: bool  # from a fenced code block (else an inline code span)

    @property
    def words(self) -> list[str]:
        """The command line split as a shell would (quotes removed)."""
        return shlex.split(self.text)

    @property
    def program(self) -> str:
        """The program (shell) or macro (spock), without its folder and variable assignments."""
        words = [w for w in self.words if not _ASSIGNMENT.match(w)]
        return words[0].rsplit("/", 1)[-1]

    def where(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def doc_files() -> list[Path]:
    """README.md and every docs/**/*.md (the reports included), in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def classify(text: str) -> str | None:
    """"shell", "spock" or None (not a command) for a command line."""
    try:
        words = [w for w in shlex.split(text) if not _ASSIGNMENT.match(w)]
    except ValueError:
        return None
    if not words:
        return None
    first = words[0].rsplit("/", 1)[-1]
    if first in PROGRAMS:
        return "shell"
    if words[0] in MACROS:
        return "spock"
    return None


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after a blank, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def _open_quote(line: str) -> bool:
    """The line leaves a quoted string open (it goes on on the next line)."""
    try:
        shlex.split(line, comments=True)
    except ValueError:
        return True
    return False


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join lines ending with a backslash, and the lines of a quoted string that spans
    several; keep the first line number."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in lines:
        if pending is not None:
            separator = "\n" if _open_quote(pending[1]) else " "
            number, line = pending[0], pending[1] + separator + line.strip()
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1].rstrip())
        elif _open_quote(line):
            pending = (number, line)
        else:
            pending = None
            joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined


def _split_background(text: str) -> list[str]:
    """``a & b &`` -> ``["a", "b"]``."""
    return [part.strip() for part in re.split(r"\s&(?:\s|$)|\s&$", text + " ") if part.strip()]


def block_commands(doc: str, language: str, lines: list[tuple[int, str]]) -> list[DocCommand]:
    """Commands of one fenced block; in a shell block every line must be one."""
    shell_block = language in _SHELL_LANGUAGES
    if not shell_block and language:
        return []
    commands = []
    for number, line in _logical_lines(lines):
        text = strip_comment(line)
        if not text or _ASSIGNMENT.match(text):
            continue
        for part in _split_background(text):
            kind = classify(part)
            if kind is None and shell_block and not _ASSIGNMENT.match(part.split()[0]):
                kind = "unknown"
            if kind is not None:
                commands.append(DocCommand(doc, number, part, kind, True))
    return commands


def inline_commands(doc: str, text: str) -> list[DocCommand]:
    """Commands in inline code spans (which may wrap over two lines) of ``text``."""
    commands = []
    for match in _INLINE.finditer(text):
        snippet = " ".join(match.group(1).replace("\\|", "|").split())
        kind = classify(snippet)
        if kind is not None:
            line = text.count("\n", 0, match.start()) + 1
            commands.append(DocCommand(doc, line, snippet, kind, False))
    return commands


def file_commands(path: Path) -> list[DocCommand]:
    """Every command of one Markdown file, in order."""
    doc = str(path.relative_to(ROOT))
    outside: list[str] = []
    commands: list[DocCommand] = []
    block: list[tuple[int, str]] | None = None
    language = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = _FENCE.match(line)
        if fence and block is None:
            block, language = [], fence.group(1).lower()
            outside.append("")
        elif fence:
            commands += block_commands(doc, language, block)
            block = None
            outside.append("")
        elif block is not None:
            block.append((number, line))
            outside.append("")
        else:
            outside.append(line)
    commands += inline_commands(doc, "\n".join(outside))
    return sorted(commands, key=lambda c: c.line)


def documented_commands() -> list[DocCommand]:
    """Every command of README.md and docs/*.md."""
    return [command for path in doc_files() for command in file_commands(path)]


def substitute(text: str, required: dict[str, str], optional: dict[str, str] | None = None) -> str:
    """``text`` with the test's values in place of the documented site values: every
    ``required`` one must be in it (a command that stops using one must fail the test that
    runs it), ``optional`` ones are replaced where they are."""
    for site in required:
        assert site in text, f"{site!r} no longer in {text!r}: update the test"
    for site, here in {**(optional or {}), **required}.items():
        text = text.replace(site, here)
    return text
