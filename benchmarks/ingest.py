"""Ingest throughput: `Store.ingest` of the seed corpus into a fresh index vs the bare embedder on the same texts.

The baseline embeds exactly the texts ingest embeds for chunks (title + chunk) in one call, so
the ratio is the share of the embedder's speed that survives chunking, title embedding, batching
and the Chroma writes. The baseline runs before and after ingest and the mean is used, so a
change in machine load during the run shows up in both. Does not touch the shared seed index.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from assistant.backends import MiniLMEmbedder
from assistant.chunking import chunk_corpus
from assistant.config import Settings
from assistant.corpus import load_corpus
from assistant.store import Store, embed_text
from harness.common import TimedEmbedder

from .common import Result, Row, log

TARGET_RATIO = 0.8


def run() -> Result:
    """Chunks per second of a fresh ingest, beside the raw embedder's chunks per second."""
    settings = Settings()
    papers = load_corpus(settings.corpus.seed_paths)
    texts = [embed_text(c.title, c.text) for c in chunk_corpus(papers, settings.chunking)]
    embedder = MiniLMEmbedder(settings.embed)
    embedder.embed(texts[:16])  # warm the ONNX session

    raw_rates = []
    log(f"raw embedder: {len(texts)} chunk texts")
    started = time.perf_counter()
    embedder.embed(texts)
    raw_rates.append(len(texts) / (time.perf_counter() - started))

    timed = TimedEmbedder(embedder)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log(f"ingest: {len(papers)} papers into a fresh index")
        report = Store(Settings(data_dir=Path(tmp)), timed).ingest(papers)

    log("raw embedder again")
    started = time.perf_counter()
    embedder.embed(texts)
    raw_rates.append(len(texts) / (time.perf_counter() - started))

    ingest_rate = report.chunks_added / report.seconds
    raw_rate = float(np.mean(raw_rates))
    ratio = ingest_rate / raw_rate
    row = Row("ingest", "ingest throughput (seed corpus)", ingest_rate, "chunks/s", "raw embedder, same texts",
              raw_rate, f">= {TARGET_RATIO} of raw", ratio >= TARGET_RATIO,
              f"{report.chunks_added} chunks, {report.papers} papers")
    return Result(
        rows=[row],
        details={
            "papers": report.papers,
            "chunks": report.chunks_added,
            "ingest_seconds": round(report.seconds, 2),
            "raw_rates_chunks_per_s": [round(r, 1) for r in raw_rates],
            "embed_seconds_inside_ingest": round(timed.seconds, 2),
            "texts_embedded_inside_ingest": timed.texts,  # chunk texts plus one title per paper
            "other_seconds_inside_ingest": round(report.seconds - timed.seconds, 2),
        },
    )
