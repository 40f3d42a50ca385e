"""Golden files under ``tests/golden/``: text a pure function must give exactly.

Set ``UPDATE_GOLDEN=1`` to write them again after a deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sardana_redis.publishing.scan_info import SARDANA_VERSION

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, text: str) -> None:
    """``text`` is the content of ``tests/golden/<name>`` (written there under UPDATE_GOLDEN)."""
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} changed: UPDATE_GOLDEN=1 to accept, then review"


def assert_golden_json(name: str, value: Any) -> None:
    """``value`` as strict, indented JSON, Sardana's version left out, is ``tests/golden/<name>``."""
    text = json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    assert_golden(name, text.replace(json.dumps(SARDANA_VERSION), '"<sardana version>"'))
