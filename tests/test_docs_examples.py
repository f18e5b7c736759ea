"""Every ```python block in README.md and docs/*.md runs as written; every command line they show is valid.

The blocks of one page run in order in one namespace (a page reads as one session), in a scratch working
directory, so a page may build on its earlier blocks. A page's examples are part of its contract: when
the API changes, this test names the page and the block that no longer runs. Command lines
(``nnbcd solve solvers/X.toml --set table.key=value``, in code blocks or inline) are not run (some need
data that is not shipped, or minutes): their preset must exist and, with the overrides applied, pass its
runner's checks, which load and train nothing.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# `nnbcd solve <preset>.toml [options]`, up to the end of the inline code span, the line or an `&&`
SOLVE = re.compile(r"nnbcd solve [^`&\n]*\.toml[^`&\n]*(?:\n--set[^`&\n]*)*")


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


def solve_commands(page: Path) -> list[str]:
    return [m.group(0).replace("\n", " ") for m in SOLVE.finditer(page.read_text(encoding="utf-8"))]


def test_readme_begins_with_the_two_setup_commands():
    # .ci/run executes line 2 of the README's first ```bash block: the test command must stay there
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"^```bash\n(.*?)^```", text, re.S | re.M).group(1).splitlines()
    assert first == ["pip install . && nnbcd solve solvers/digits.toml --out runs/digits",
                     'pip install -e ".[test]" -c constraints/test.txt && python -m pytest -q']


@pytest.mark.parametrize("page", [p for p in PAGES if solve_commands(p)], ids=lambda p: p.name)
def test_page_command_lines_are_valid(page):
    from nnbcd.runners import get_runner
    from nnbcd.runners.schema import load_preset

    for command in solve_commands(page):
        args = shlex.split(command)[2:]
        preset, overrides = args[0], [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        config = load_preset(ROOT / preset, overrides)
        if config.get("method", "nnbcd") != "nnbcd":
            pytest.importorskip("torch")
        try:
            get_runner(config.get("method", "nnbcd")).check(config)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page.relative_to(ROOT)}: `{command}` fails its preset checks: {exc!r}") from exc
