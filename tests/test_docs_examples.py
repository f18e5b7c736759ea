"""Every ```python block in README.md and docs/*.md runs as written.

The blocks of one page run in order in one namespace (a page reads as one session), in a scratch working
directory, so a page may build on its earlier blocks. A page's examples are part of its contract: when
the API changes, this test names the page and the block that no longer runs.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_pages_have_examples():
    # the extraction itself must find the examples the docs show (a broken pattern would pass vacuously)
    assert sum(len(python_blocks(p)) for p in PAGES) >= 5
    assert python_blocks(ROOT / "README.md")


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    if "import torch" in page.read_text(encoding="utf-8") or "nnbcd.torch" in page.read_text(encoding="utf-8"):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for n, code in enumerate(python_blocks(page), 1):
        try:
            exec(compile(code, f"{page.name} block {n}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page.relative_to(ROOT)} python block {n} fails: {exc!r}\n{code}") from exc
