"""Shared fixtures. Unit tests use the fakes in tests/fakes.py; end-to-end tests use the real parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.bundled import seed_paths
from assistant.config import Settings
from harness.common import cache_root

SEED_FILE = next(p for p in seed_paths() if p.suffix == ".txt")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a private data folder."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real packaged model, joined and verified once."""
    from assistant.modelfile import ensure_model

    return ensure_model(cache_root() / "models")


@pytest.fixture(scope="session")
def seed_settings(model_path: Path) -> Settings:
    """Settings over a real Chroma index of the bundled seeds, kept between runs (ingest is incremental)."""
    return Settings(data_dir=cache_root() / "seed-index", llm={"model_path": model_path})


@pytest.fixture(scope="session")
def seed_assistant(seed_settings: Settings):  # type: ignore[no-untyped-def]
    """The real assistant: real Chroma, real embedder, real local model."""
    from assistant import Assistant

    return Assistant.from_settings(seed_settings)
