"""Open an index in a fresh process and time what a user waits for: the open, then first questions.

Run as a script by benchmarks/scale.py, with PYTHONPATH pointing at the code under test: today's
tree or a baseline checkout (an older commit), so both are measured in one benchmark run. It
therefore imports nothing from `benchmarks` and uses only the API both have (Store,
HybridRetriever, SentenceIndex). Prints one JSON object on stdout:
  open_seconds          constructing the retriever (papers, chunks, BM25: whatever that code does);
  first_question_ms     the first `passages` call after the open (Chroma loads its HNSW here);
  cold_ms / warm_ms     each further question the first time (papers mostly unseen) and again;
  texts_per_question    texts embedded per cold question beyond the question and its parts
                        (sentences of papers met for the first time, when the code embeds them then);
  rss_bytes, vm_hwm_bytes  memory of this process after the questions.
The questions are embedded by the packaged MiniLM, as `serve` does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


class CountingEmbedder:
    """The real embedder, counting the texts it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.texts = 0

    def embed(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.inner.embed(texts)


def _memory() -> dict[str, int]:
    status = Path("/proc/self/status").read_text().splitlines()
    found = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_bytes": found["VmRSS"], "vm_hwm_bytes": found["VmHWM"]}


def probe(data_dir: Path, questions: list[str]) -> dict[str, Any]:
    """Open the index under `data_dir` and ask `questions` (the first one times the first question)."""
    from assistant.backends import MiniLMEmbedder
    from assistant.config import Settings
    from assistant.retrieval import HybridRetriever, SentenceIndex, question_parts
    from assistant.store import Store

    settings = Settings(data_dir=data_dir)
    embedder = CountingEmbedder(MiniLMEmbedder(settings.embed))
    embedder.embed(["warm the embedder up"])  # ONNX's first run is slow in any code: not the index's cost
    started = time.perf_counter()
    store = Store(settings, embedder)
    stored = getattr(store, "sentences", None)
    sentences = SentenceIndex(embedder, stored) if stored is not None else SentenceIndex(embedder)
    retriever = HybridRetriever(store, settings.retrieval, sentences)
    open_s = time.perf_counter() - started
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    extra_texts: list[int] = []
    first_ms = 0.0
    for n, question in enumerate(questions):
        before = embedder.texts
        started = time.perf_counter()
        retriever.passages(question)
        elapsed = (time.perf_counter() - started) * 1000
        own = 1 + len(question_parts(question)) if settings.retrieval.split_question else 1
        if n == 0:
            first_ms = elapsed
        else:
            timings["cold"].append(elapsed)
            extra_texts.append(embedder.texts - before - own)
            started = time.perf_counter()
            retriever.passages(question)
            timings["warm"].append((time.perf_counter() - started) * 1000)
    return {
        "open_seconds": round(open_s, 2),
        "first_question_ms": round(first_ms, 1),
        "cold_ms": {"p50": round(float(np.percentile(timings["cold"], 50)), 1),
                    "p95": round(float(np.percentile(timings["cold"], 95)), 1)},
        "warm_ms": {"p50": round(float(np.percentile(timings["warm"], 50)), 1)},
        "texts_per_question": round(float(np.mean(extra_texts)), 1),
        "questions": len(questions),
        **_memory(),
    }


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print("usage: open_probe.py DATA_DIR QUESTIONS_JSONL COUNT", file=sys.stderr)
        raise SystemExit(2)
    rows = [json.loads(line) for line in Path(sys.argv[2]).read_text(encoding="utf-8").splitlines() if line.strip()]
    print(json.dumps(probe(Path(sys.argv[1]), [r["question"] for r in rows][: int(sys.argv[3])])))
