"""docs/api.md against the code: every exported name has a row, and no op or compression function is
outside the backend convention (a keyword-only ``backend=None``, or a row marked "n/a" with its reason).

The page is parsed, not trusted: a function added to ``__all__`` without a row, a row claiming a
``backend`` keyword the signature lacks, or a new array function with neither, fails here.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Dict

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
#: the packages whose whole ``__all__`` the page must list
LISTED = ("nnbcd", "nnbcd.ops", "nnbcd.compress", "nnbcd.backend")
#: the modules whose functions must follow the backend convention (plan §1)
CONVENTION = ("nnbcd.ops", "nnbcd.compress", "nnbcd.compress.masked", "nnbcd.compress.tt_cores")
#: parameter names that would smuggle a backend or array module in by position
POSITIONAL_BACKENDS = {"be", "xp", "backend"}


def parse_page(text: str) -> Dict[str, Dict[str, Dict[str, str]]]:
    """``{module: {name: {column: cell}}}`` from the page's ``## `module``` sections and their tables.

    A heading may name several modules (``## `a`, `b```); a row's first cell may name several objects
    (```plot_history`, `plot_rate```), each getting the row.
    """
    tables: Dict[str, Dict[str, Dict[str, str]]] = {}
    modules: list = []
    header: list = []
    for line in text.splitlines():
        if line.startswith("## "):
            modules = re.findall(r"`([\w.]+)`", line) if line.startswith("## `") else []
            header = []
            continue
        if not modules or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        if set(cells[0]) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        for name in re.findall(r"`([\w.]+)`", cells[0]):
            for module in modules:
                tables.setdefault(module, {})[name] = row
    return tables


TABLES = parse_page(PAGE.read_text(encoding="utf-8"))


def _exported(module: str) -> list:
    return list(importlib.import_module(module).__all__)


def _convention_functions():
    """``(module, name, function)`` for every public function the backend convention covers, and the
    ``project``/``initial`` methods of every compression spec."""
    from nnbcd.compress import Compression

    out = []
    for module in CONVENTION:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                out.append((module, name, obj))
            elif inspect.isclass(obj) and issubclass(obj, Compression):
                out.extend((module, f"{name}.{meth}", getattr(obj, meth)) for meth in ("project", "initial"))
    return out


def _has_keyword_backend(fn) -> bool:
    p = inspect.signature(fn).parameters.get("backend")
    return p is not None and p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None


def test_the_parser_reads_the_tables():
    # a broken parser would make every check below vacuous
    assert set(LISTED) <= set(TABLES)
    assert TABLES["nnbcd.ops"]["tt_svd"]["backend argument"].startswith("keyword-only")
    assert TABLES["nnbcd.ops"]["tt_ranks"]["backend argument"].startswith("n/a")
    assert parse_page("## `m`, `n`\n\n| name | kind |\n|---|---|\n| `f`, `g` | function |\n") == {
        m: {f: {"name": "`f`, `g`", "kind": "function"} for f in "fg"} for m in "mn"}


@pytest.mark.parametrize("module", LISTED)
def test_every_exported_name_has_a_row(module):
    missing = [name for name in _exported(module) if name not in TABLES.get(module, {})]
    assert not missing, f"docs/api.md has no row for {module}.{missing} (section ## `{module}`)"


@pytest.mark.parametrize("module", LISTED)
def test_no_row_for_a_name_that_is_not_exported(module):
    # a renamed or removed function must leave the page too
    stale = [name for name in TABLES[module] if "." not in name and name not in _exported(module)]
    assert not stale, f"docs/api.md lists {module}.{stale}, which {module}.__all__ does not export"


CONVENTION_FUNCTIONS = _convention_functions()


@pytest.mark.parametrize("module,name,fn", CONVENTION_FUNCTIONS, ids=[f"{m}.{n}" for m, n, _ in CONVENTION_FUNCTIONS])
def test_backend_convention(module, name, fn):
    """A keyword-only ``backend=None``, or a row that says "n/a" (no array computation to place)."""
    params = inspect.signature(fn).parameters
    positional = [p for p in params.values() if p.name in POSITIONAL_BACKENDS and p.kind is not p.KEYWORD_ONLY]
    assert not positional, f"{module}.{name} takes {positional[0].name!r} positionally; make it keyword-only"
    row = TABLES.get(module, {}).get(name.split(".")[0])
    assert row is not None, f"docs/api.md has no row for {module}.{name}"
    cell = row["backend argument"]
    if _has_keyword_backend(fn):
        assert "n/a" not in cell, f"{module}.{name} takes backend=None but its row says {cell!r}"
    else:
        assert cell.startswith("n/a"), (
            f"{module}.{name} has no keyword-only backend=None and its row does not mark it n/a "
            f"(shapes only, with the reason): {cell!r}")


def test_rows_claiming_a_backend_keyword_have_it():
    for module in CONVENTION:
        mod = importlib.import_module(module)
        for name, row in TABLES.get(module, {}).items():
            obj = getattr(mod, name, None)
            if inspect.isfunction(obj) and row["backend argument"].startswith("keyword-only"):
                assert _has_keyword_backend(obj), f"docs/api.md says {module}.{name} takes backend=None; it does not"


def test_page_states_the_conventions():
    text = PAGE.read_text(encoding="utf-8")
    from nnbcd.result import Status

    for status in Status:  # the status table, code and message, as result.py has it
        assert f"| {int(status)} | `{status.name}` | {status.message} |" in text
    assert "is the paper's `W_{i+1}`" in text
    assert "expected_failed_checks` empty" in text
