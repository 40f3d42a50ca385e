"""Parsing the project's Python sources in tests (what a test module defines or imports)."""

from __future__ import annotations

import ast

#: CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state
#: (python/cpython#106905): another thread building an AST at the same moment (a library's
#: ``ast.literal_eval`` in a Tango event callback, say) makes ``ast.parse`` raise
#: ``SystemError: AST constructor recursion depth mismatch``. The source is fine: parse again.
_ATTEMPTS = 5


def parse_python(source: str) -> ast.Module:
    """``ast.parse(source)``, immune to CPython 3.11's cross-thread AST race."""
    for attempt in range(_ATTEMPTS):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
