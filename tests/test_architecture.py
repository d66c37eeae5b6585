"""The import contract in pyproject.toml ([tool.importlinter]): faces -> runtime -> core -> stages -> base,
the two faces apart, tests and benchmarks apart. Checked by `lint-imports` on this tree, and shown to
fail on a copy of the package with one backwards import planted in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_import_contract_holds() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_of_the_package_has_a_layer() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layered = {name.strip() for layer in config["layers"] for name in layer.split("|")}
    modules = {p.stem for p in (REPO / "assistant").glob("*.py")} - {"__init__"}
    assert modules - layered == set(), "add the new module to a layer in pyproject.toml"


def test_a_backwards_import_breaks_the_build(tmp_path: Path) -> None:
    for name in ("assistant", "evals", "benchmarks", "tests", "harness"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    ui = tmp_path / "assistant" / "ui.py"
    ui.write_text(ui.read_text().replace("from .runtime import Runtime\n",
                                         "from .runtime import Runtime\nfrom .server import API_PREFIX  # noqa\n"))
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "assistant.ui -> assistant.server" in result.stdout
