"""README.md's layout table names every module of the package (pure)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_is_in_the_layout_table():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    modules = [p for p in (ROOT / "sardana_redis").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")]
    missing = [str(p.relative_to(ROOT)) for p in modules if f"{p.name}`" not in layout]
    assert not missing, f"README.md's layout table does not name: {missing}"
