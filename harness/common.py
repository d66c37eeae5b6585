"""The caches, settings and data the tests and the benchmarks share.

Caches (the joined model, the seed index, synthetic indexes, reports) live under .test-cache/ of
the repository (or PAPER_ASSISTANT_TEST_CACHE), so runs after the first are quick.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.backends import Embedder
from assistant.config import Settings

REPO = Path(__file__).resolve().parent.parent
QUESTIONS_FILE = REPO / "evals" / "data" / "questions.jsonl"


def cache_root() -> Path:
    """The cache shared by tests and benchmarks (PAPER_ASSISTANT_TEST_CACHE, default .test-cache/)."""
    root = Path(os.environ.get("PAPER_ASSISTANT_TEST_CACHE", REPO / ".test-cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def model_path() -> Path:
    """The packaged model, joined and verified once (the same file the tests use)."""
    from assistant.modelfile import ensure_model

    return ensure_model(cache_root() / "models")


def seed_settings() -> Settings:
    """Default settings over the seed index the tests also use, with the packaged model."""
    return Settings(data_dir=cache_root() / "seed-index", llm={"model_path": model_path()})


def percentile(samples_s: list[float], q: float) -> float:
    """The q-th percentile of durations in seconds, in milliseconds (linear interpolation)."""
    return float(np.percentile(np.array(samples_s) * 1000.0, q))


def load_questions() -> list[dict[str, Any]]:
    """The eval question set (id, kind, question, gold_titles, must_contain, expect)."""
    return [json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def answerable_questions(count: int) -> list[dict[str, Any]]:
    """`count` answerable questions of the eval's dev split, alternating kinds so every kind appears."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in load_questions():
        if row["expect"] == "answer" and row.get("split") == "dev":
            by_kind.setdefault(row["kind"], []).append(row)
    picked: list[dict[str, Any]] = []
    queues = [list(rows) for _, rows in sorted(by_kind.items(), key=lambda kv: -len(kv[1]))]
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


class TimedEmbedder:
    """Wraps an embedder (keeping its name, so the index fingerprint is unchanged) and adds up the
    texts embedded and the time spent inside `embed`."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0
        self.texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)
