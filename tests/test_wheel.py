"""The wheel: built from this tree without packaging warnings, installed (not editable) into a fresh venv,
it answers a question from a folder outside the repository with its own packaged prompts, seeds,
embedder and model.

The fresh venv gets the wheel alone (`--no-deps`); the dependencies it needs come from the dev
venv through a `.pth` file holding the dev venv's site-packages path, a plain path line, so that
folder's own .pth files (the dev venv's editable install of this repository) are not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from assistant.config import Settings
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
QUESTION = "What perplexity does the Kneser-Ney baseline reach on the billion-word benchmark?"
PACKAGED = ("assistant", "evals", "prompts", "seeds", "pyproject.toml", "README.md")  # what the build reads


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_answers_from_outside_the_repository(model_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the repository
    source.mkdir()
    for name in PACKAGED:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--verbose",
                 "--wheel-dir", str(tmp_path / "dist"), str(source)], cwd=tmp_path)
    log = built.stdout + built.stderr
    assert "would be ignored" not in log and "BuildBackendWarning" not in log, log[-3000:]
    wheel = next((tmp_path / "dist").glob("paper_assistant-*.whl"))

    venv = tmp_path / "venv"
    python, command = venv / "bin" / "python", venv / "bin" / "paper-assistant"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-compile", str(wheel)],
        cwd=tmp_path)
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    (Path(site.stdout.strip()) / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PAPER_ASSISTANT_")}
    env |= {"PAPER_ASSISTANT_DATA_DIR": str(tmp_path / "data"), "PAPER_ASSISTANT_LLM__MODEL_PATH": str(model_path)}
    where = run([str(python), "-c", "import assistant; print(assistant.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    settings = Settings.model_validate_json(run([str(command), "config"], cwd=elsewhere, env=env).stdout)
    seeds = settings.corpus.seed_paths
    assert seeds and all(p.is_relative_to(venv) and p.is_file() for p in seeds), seeds

    # The first start indexes the packaged seeds, then answers with the packaged prompts and model.
    answer = json.loads(run([str(command), "ask", "--json", QUESTION], cwd=elsewhere, env=env).stdout)
    assert not answer["abstained"], answer["answer"]
    assert "67.6" in answer["answer"] and answer["citations"]
