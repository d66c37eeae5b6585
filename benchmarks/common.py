"""What every benchmark shares: the result row, percentiles, caches, settings, eval questions, machine load.

A `Row` is one figure beside its baseline (measured in the same run) and their ratio; `target`
says which ratio or absolute value counts as good. Caches (the joined model, the seed index,
synthetic indexes) live under .test-cache/ like the tests' own, so runs after the first are quick.
Does not time anything itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import PROJECT_ROOT, Settings

REPO = PROJECT_ROOT
QUESTIONS_FILE = REPO / "evals" / "data" / "questions.jsonl"
ARTIFACT = REPO / "artifacts" / "benchmarks.json"


@dataclass
class Row:
    """One measured figure, its baseline from the same run, and how it compares to the target."""

    benchmark: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline_value, when there is a baseline."""
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        """The row with its ratio, for the JSON artifact."""
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return out


@dataclass
class Result:
    """What one benchmark returns: table rows and free-form details for the JSON artifact."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def cache_root() -> Path:
    """The cache shared with the tests (PAPER_ASSISTANT_TEST_CACHE, default .test-cache/)."""
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


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews absolute figures, not ratios."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    """CPU count, memory and load, recorded beside the figures."""
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"cpus": os.cpu_count(), "mem_gb": round(mem_kb / 2**20, 1), "loadavg_start": loadavg(),
            "python": sys.version.split()[0]}


def log(message: str) -> None:
    """Progress on stderr; results go to stdout."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def stopwatch(samples: list[float]) -> Iterator[None]:
    """Append the block's duration in seconds to `samples`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        samples.append(time.perf_counter() - started)
