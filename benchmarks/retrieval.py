"""Retrieval latency at the seed size, 10k and 100k chunks, beside a bare Chroma query on the same collection.

Measured per question, interleaved so machine load hits all variants alike:
  bare    `collection.query` with a precomputed question vector (the baseline: vector search only);
  hits    `HybridRetriever.hits`: question embedding + dense (LlamaIndex over Chroma) + BM25 + fusion;
  retrieve `HybridRetriever.passages` (what `Assistant.retrieve` runs): hits + per-paper sentence selection.
Sentence vectors are read from the side file written at ingest (and kept in memory after), so
`retrieve` is measured twice per question: cold (papers no earlier question touched) and warm (the
same question again); the two should now be close. The 10k/100k indexes are synthetic (benchmarks/synthetic.py); the query
embedding is always the real model. Does not build the seed index beyond what the tests build.
"""

from __future__ import annotations

import time
from typing import Any

from assistant.backends import MiniLMEmbedder
from assistant.config import Settings
from assistant.corpus import load_corpus
from assistant.retrieval import HybridRetriever, SentenceIndex
from assistant.store import Store
from harness.common import load_questions, percentile, seed_settings

from .common import Result, Row, log, stopwatch
from .synthetic import built_info, ensure_synthetic_index

TARGET_P50_MS = 20.0
TARGET_SIZE = 100_000
WARMUP = 3


def _measure(label: str, settings: Settings, embedder: MiniLMEmbedder, questions: list[str]) -> dict[str, Any]:
    store = Store(settings, embedder)
    started = time.perf_counter()
    retriever = HybridRetriever(store, settings.retrieval, SentenceIndex(embedder, store.sentences))
    open_s = time.perf_counter() - started
    status = store.status()
    warmup, measured = questions[:WARMUP], questions[WARMUP:]
    log(f"{label}: {status.papers} papers, {status.chunks} chunks (retriever opened in {open_s:.1f} s); "
        f"{len(measured)} questions")
    n = settings.retrieval.candidates
    for q in warmup:
        retriever.passages(q)
    samples: dict[str, list[float]] = {
        "embed": [], "bare": [], "dense": [], "bm25": [], "hits": [], "retrieve": [], "retrieve_warm": []
    }
    for q in measured:
        with stopwatch(samples["embed"]):
            vector = embedder.embed([q])[0].tolist()
        with stopwatch(samples["bare"]):
            store.chunks.query(query_embeddings=[vector], n_results=n)
        with stopwatch(samples["dense"]):
            retriever.hits(q, mode="dense")
        with stopwatch(samples["bm25"]):
            retriever.hits(q, mode="bm25")
        with stopwatch(samples["hits"]):
            retriever.hits(q)
        with stopwatch(samples["retrieve"]):
            retriever.passages(q)
        with stopwatch(samples["retrieve_warm"]):
            retriever.passages(q)
    return {
        "label": label,
        "papers": status.papers,
        "chunks": status.chunks,
        "open_seconds": round(open_s, 2),
        "p50_ms": {k: round(percentile(v, 50), 2) for k, v in samples.items()},
        "p95_ms": {k: round(percentile(v, 95), 2) for k, v in samples.items()},
        "queries": len(measured),
    }


def run(sizes: tuple[int, ...] = (10_000, TARGET_SIZE), queries: int = 40) -> Result:
    """p50/p95 of hybrid hits and full retrieval at each size, beside bare Chroma queries."""
    embedder = MiniLMEmbedder(Settings().embed)
    questions = [row["question"] for row in load_questions()][: queries + WARMUP]
    seed = seed_settings()
    if Store(seed, embedder).is_empty():
        log("indexing the seed corpus once (shared with the tests)")
        Store(seed, embedder).ingest(load_corpus(seed.corpus.seed_paths))
    targets: list[tuple[str, Settings]] = [("seed", seed)]
    for size in sizes:
        targets.append((f"{size // 1000}k", ensure_synthetic_index(size, embedder)))
    result = Result(details={"sizes": {}})
    for label, settings in targets:
        m = _measure(label, settings, embedder, questions)
        if label != "seed":
            m["synthetic_build"] = built_info(settings)
        result.details["sizes"][label] = m
        where = f"{label} ({m['chunks']} chunks)"
        at_target = m["chunks"] >= TARGET_SIZE * 0.99
        variants = (("hits", "hybrid hits", (50, 95)), ("retrieve", "retrieve, cold sentence cache", (50, 95)),
                    ("retrieve_warm", "retrieve, warm sentence cache", (50,)))
        for name, what, quantiles in variants:
            for q in quantiles:
                value = m[f"p{q}_ms"][name]
                target, ok = "", None
                if name == "hits" and q == 50 and at_target:
                    target, ok = f"<= {TARGET_P50_MS:.0f} ms", value <= TARGET_P50_MS
                result.rows.append(Row("retrieval", f"{what} p{q}, {where}", value, "ms", "bare Chroma query",
                                       m[f"p{q}_ms"]["bare"], target, ok))
    return result
