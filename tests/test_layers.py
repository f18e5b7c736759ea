"""The import contracts of setup.cfg (docs/architecture.md) hold, and would catch a forbidden import."""
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the console script installed beside this interpreter (the test extra brings import-linter)
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(config: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:  # analyse a copy of the package instead of the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([LINT, "--config", str(config), "--no-cache", "--no-logo"], capture_output=True, text=True,
                          cwd=pythonpath or ROOT, env=env, timeout=300)


def test_contracts_are_kept():
    out = _lint(ROOT / "setup.cfg")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_contracts_cover_the_documented_layers():
    """setup.cfg states plan §2's stack in order, and the forbidden contracts name their packages."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    layers = [line.strip() for line in cfg["importlinter:contract:layers"]["layers"].split("\n") if line.strip()]
    assert layers == ["nnbcd.cli", "nnbcd.bench", "nnbcd.runners", "nnbcd.torch | nnbcd.bcd", "nnbcd.convergence",
                      "nnbcd.result", "nnbcd.compress", "nnbcd.ops", "nnbcd.backend", "nnbcd._validation"]
    forbidden = {s: cfg[s]["forbidden_modules"].split() for s in cfg.sections()
                 if s.startswith("importlinter:contract:") and cfg[s]["type"] == "forbidden"}
    everything_else = {"nnbcd.ops", "nnbcd.compress", "nnbcd.result", "nnbcd.convergence", "nnbcd.bcd",
                       "nnbcd.torch", "nnbcd.runners", "nnbcd.cli"}
    assert set(forbidden["importlinter:contract:backend"]) == everything_else | {"nnbcd.data"}
    assert set(forbidden["importlinter:contract:data"]) == everything_else | {"nnbcd.backend"}
    assert forbidden["importlinter:contract:tensorly"] == ["tensorly"]
    assert forbidden["importlinter:contract:torch-core"] == ["torch"]


@pytest.mark.parametrize("module,line,contract", [
    # the backend reaching up into the solver: breaks the stack and the backend's own contract
    ("backend/_base.py", "from nnbcd.bcd import solver", "nnbcd.backend imports nothing of nnbcd"),
    # an op importing the package root, which re-exports the solver: a real upward dependency
    ("ops/__init__.py", "import nnbcd", "the stack"),
    ("data/embedded.py", "from nnbcd.ops import tt", "nnbcd.data imports nothing of nnbcd"),
    ("compress/tt.py", "import tensorly", "tensorly is a test and benchmark oracle"),
    ("result.py", "import torch", "torch is optional"),
    ("cli.py", "import torch", "torch is imported only under"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    """The real contracts, run on a copy of the package with one forbidden import added, fail naming it."""
    shutil.copytree(ROOT / "nnbcd", tmp_path / "nnbcd", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "nnbcd" / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    out = _lint(tmp_path / "setup.cfg", pythonpath=tmp_path)
    assert out.returncode != 0 and "Broken contracts" in out.stdout, out.stdout + out.stderr
    broken = out.stdout.split("Broken contracts", 1)[1].replace("\n", " ")  # names wrap at 80 columns
    assert contract in broken, out.stdout
