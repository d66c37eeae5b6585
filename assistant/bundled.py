"""The files that ship inside the package: the prompt files and the seed corpus, read with importlib.resources.

In the repository they live at the top level (`prompts/`, `seeds/`); the build maps them into the
package as `assistant/prompts/` and `assistant/seeds/` (pyproject's `package-dir`), so a wheel
installed anywhere finds them beside its code. A source checkout, where the package folder holds
neither, reads the top-level folders the build maps from. Does not parse what it finds.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

PROMPTS = "prompts"
SEEDS = "seeds"
SEED_SUFFIXES = (".txt", ".jsonl")


def folder(name: str) -> Traversable:
    """The packaged folder `name` (prompts or seeds)."""
    packaged = resources.files(__package__ or "assistant") / name
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name  # the top-level folder the build maps from
    return checkout if checkout.is_dir() else packaged


def seed_paths() -> list[Path]:
    """The bundled corpus files, .txt listings first, each group sorted by name."""
    found = [entry for entry in folder(SEEDS).iterdir() if entry.is_file() and entry.name.endswith(SEED_SUFFIXES)]
    ordered = sorted(found, key=lambda e: (SEED_SUFFIXES.index(Path(e.name).suffix), e.name))
    return [Path(str(entry)) for entry in ordered]
