"""Synthetic corpora of any size, re-combined from the seed abstracts, and deterministic vectors for them.

Embedding 100k chunks with the real model would take most of an hour on two cores, and
retrieval latency does not depend on what the vectors mean, only on their number and spread. So
a synthetic paper takes a seed title (with a variant number) and 4-9 seed sentences drawn by a
seeded generator; its vectors are averages of the real embeddings of those sentences and title,
plus a small perturbation seeded by the text's hash. Same size, same vectors, every run.
The index is written through the real `Store.ingest` under the real embedder's name, so a
Store opened with the real embedder finds it and embeds queries for real.
Does not time anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from assistant.backends import Embedder
from assistant.chunking import chunk_paper
from assistant.config import Settings
from assistant.corpus import load_corpus, make_paper
from assistant.store import Store
from assistant.text import split_sentences
from assistant.types import Paper
from harness.common import cache_root

from .common import log

VARIANT = re.compile(r" \(variant \d+\)$")
TITLE_WEIGHT = 0.35  # embed_text puts the title before the chunk; the title pulls the vector towards it
NOISE = 0.02


class SentenceTable:
    """Real embeddings of every seed title and cleaned seed sentence, cached on disk."""

    def __init__(self, seeds: list[Paper], embedder: Embedder) -> None:
        self.titles = [p.title for p in seeds]
        self.sentences = list(dict.fromkeys(s for p in seeds for s in split_sentences(p.abstract)))
        texts = self.titles + self.sentences
        key = hashlib.sha1(("\n".join(texts) + embedder.name).encode()).hexdigest()[:12]
        path = cache_root() / "bench-synthetic" / f"sentences-{key}.npy"
        if path.exists():
            self.vectors = np.load(path)
        else:
            log(f"embedding {len(texts)} seed titles and sentences once (cached in {path.parent})")
            self.vectors = embedder.embed(texts).astype(np.float32)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, self.vectors)
        self.row = {text: i for i, text in enumerate(texts)}

    def vector(self, text: str) -> np.ndarray:
        """The stored vector of a title or sentence; an unknown text maps to a fixed row chosen by its hash."""
        row = self.row.get(text)
        if row is None:
            row = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % len(self.vectors)
        return self.vectors[row]


class SyntheticEmbedder:
    """Deterministic vectors for synthetic texts, under the real embedder's name (so fingerprints match)."""

    def __init__(self, table: SentenceTable, name: str, dim: int) -> None:
        self.table = table
        self.name = name
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        """One vector per text: title and sentence vectors blended, perturbed by the text's hash, normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            title, _, body = text.partition("\n")
            vector = self.table.vector(VARIANT.sub("", title)).copy()
            sentences = split_sentences(body)
            if sentences:
                body_vector = np.mean([self.table.vector(s) for s in sentences], axis=0)
                vector = TITLE_WEIGHT * vector + (1 - TITLE_WEIGHT) * body_vector
            seed = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)
            vector = vector + NOISE * np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return out


def synthetic_row(i: int, seeds: list[Paper], sentences: list[str]) -> tuple[str, str]:
    """Title and abstract of synthetic paper number `i`: a seed title with a variant number, 4-9 seed sentences."""
    rng = np.random.default_rng(i)
    count = int(rng.integers(4, 10))
    picked = rng.choice(len(sentences), size=count, replace=False)
    return f"{seeds[i % len(seeds)].title} (variant {i // len(seeds)})", " ".join(sentences[j] for j in picked)


def synthetic_papers(seeds: list[Paper], sentences: list[str], target_chunks: int, settings: Settings) -> list[Paper]:
    """Papers re-combined from the seeds, in a fixed order, until their chunks reach `target_chunks`."""
    papers: list[Paper] = []
    chunks = 0
    i = 0
    while chunks < target_chunks:
        paper = make_paper(*synthetic_row(i, seeds, sentences), f"synthetic:{i}")
        papers.append(paper)
        chunks += len(chunk_paper(paper, settings.chunking))
        i += 1
    return papers


def write_synthetic_jsonl(path: Path, count: int, seeds: list[Paper], sentences: list[str]) -> Path:
    """A JSONL corpus of the first `count` synthetic papers, written once (line by line) and reused."""
    if path.exists() and path.with_suffix(".done").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"writing {count} synthetic abstracts to {path}")
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            title, abstract = synthetic_row(i, seeds, sentences)
            out.write(json.dumps({"title": title, "abstract": abstract}) + "\n")
    path.with_suffix(".done").write_text(str(count))
    return path


def synthetic_settings(target_chunks: int) -> Settings:
    """Settings of the cached synthetic index of this size (default retrieval settings)."""
    return Settings(data_dir=cache_root() / "bench-synthetic" / f"chunks-{target_chunks}")


def ensure_synthetic_index(target_chunks: int, embedder: Embedder) -> Settings:
    """Build (once) and return the settings of a synthetic index with about `target_chunks` chunks."""
    settings = synthetic_settings(target_chunks)
    marker = settings.data_dir / "built.json"
    if marker.exists() and json.loads(marker.read_text()).get("target_chunks") == target_chunks:
        return settings
    seeds = load_corpus(Settings().corpus.seed_paths)
    table = SentenceTable(seeds, embedder)
    papers = synthetic_papers(seeds, table.sentences, target_chunks, settings)
    log(f"building a synthetic index of {len(papers)} papers (~{target_chunks} chunks) in {settings.data_dir}")

    def progress(done: int, total: int) -> None:
        if done % 5120 < 256 or done >= total:
            log(f"  synthetic papers written: {done}/{total}")

    store = Store(settings, SyntheticEmbedder(table, embedder.name, embedder.dim))
    report = store.ingest(papers, progress=progress)
    marker.write_text(json.dumps({"target_chunks": target_chunks, "papers": report.papers,
                                  "chunks": report.chunks_total, "build_seconds": round(report.seconds, 1)}))
    return settings


def built_info(settings: Settings) -> dict[str, object]:
    """What the build marker of a synthetic index records."""
    marker = settings.data_dir / "built.json"
    return json.loads(marker.read_text()) if marker.exists() else {}
