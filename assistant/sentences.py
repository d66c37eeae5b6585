"""Sentence vectors of abstracts: computed at ingest, kept in a SQLite side file, read on demand.

Selection (which sentences of an abstract go into the prompt), grounding and list answers compare
a question or a claim with each sentence of an abstract. Those vectors are embedded when a paper
is ingested (`sentence_texts` says which texts) and written to `SentenceFile`, one row per paper
keyed by paper id and content hash, so the first question that meets a paper embeds nothing but
itself. Nothing searches these vectors by nearest neighbour, so they stay out of Chroma's HNSW.
`SentenceIndex` reads them (and keeps the last few thousand papers in memory); a paper whose row
is missing or stale (a side file deleted, an index ingested from another machine into a Chroma
server) is embedded on first use, as before, and kept in memory only: the ingest writes this
file, retrieval only reads it. Does not know about Chroma or LlamaIndex.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Embedder
from .corpus import clean_text
from .text import split_sentences
from .types import Paper

STORED_DTYPE = np.float16  # half the disk of float32; rounding (~1e-4 on a cosine) is below the embedder's own
# batch-to-batch noise (int8 dynamic quantisation scales activations per batch)


def sentence_texts(paper: Paper) -> tuple[list[str], list[str]]:
    """(raw, clean) texts of a paper's evidence rows: row 0 is the title, rows 1.. the abstract's sentences."""
    raw = split_sentences(paper.raw_abstract) or [paper.raw_abstract]
    return [paper.title, *raw], [paper.title, *(clean_text(s) for s in raw)]


@dataclass
class Evidence:
    """One paper's abstract as sentences (raw for quoting, clean for matching) with their vectors.

    Row 0 is the title; rows 1.. are the abstract's sentences in order.
    """

    paper: Paper
    raw_sentences: list[str]
    clean_sentences: list[str]
    vectors: np.ndarray
    full_text: str


class SentenceFile:
    """The side file: one row per paper (id, content hash, title, vectors as float16 bytes).

    The title is kept so the list of papers (id, title) reads in a fraction of a second at open,
    without a pass over the store. SQLite commits a batch atomically, so an ingest killed mid-write
    leaves whole rows only, and readers in other threads or processes see the last committed batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sentences (paper_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, "
                       "title TEXT NOT NULL, dim INTEGER NOT NULL, vectors BLOB NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def put(self, papers: list[Paper], vectors: list[np.ndarray]) -> None:
        """Store each paper's vectors (rows as `sentence_texts`), replacing older ones, in one transaction."""
        rows = [(p.id, p.content_hash, p.title, int(v.shape[1]), np.ascontiguousarray(v, dtype=STORED_DTYPE).tobytes())
                for p, v in zip(papers, vectors)]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO sentences VALUES (?, ?, ?, ?, ?)", rows)

    def get(self, paper: Paper) -> np.ndarray | None:
        """The paper's vectors, or None when none are stored for its current content."""
        row = self._db().execute("SELECT content_hash, dim, vectors FROM sentences WHERE paper_id = ?",
                                 (paper.id,)).fetchone()
        if row is None or row[0] != paper.content_hash:
            return None
        return np.frombuffer(row[2], dtype=STORED_DTYPE).reshape(-1, row[1]).astype(np.float32)

    def current(self, papers: Iterable[Paper]) -> set[str]:
        """Ids of the papers whose stored vectors match their content hash."""
        want = {p.id: p.content_hash for p in papers}
        if not want:
            return set()
        marks = ",".join("?" * len(want))
        found = self._db().execute(f"SELECT paper_id, content_hash FROM sentences WHERE paper_id IN ({marks})",
                                   list(want)).fetchall()
        return {pid for pid, digest in found if want.get(pid) == digest}

    def delete(self, paper_ids: list[str]) -> None:
        """Forget these papers' vectors."""
        with self._db() as db:
            db.executemany("DELETE FROM sentences WHERE paper_id = ?", [(pid,) for pid in paper_ids])

    def count(self) -> int:
        """Papers with stored vectors."""
        return int(self._db().execute("SELECT count(*) FROM sentences").fetchone()[0])

    def titles(self) -> list[tuple[str, str]]:
        """(id, title) of every paper in the file, in no particular order."""
        return [(str(pid), str(title)) for pid, title in self._db().execute("SELECT paper_id, title FROM sentences")]


def embed_sentences(embedder: Embedder, papers: list[Paper]) -> list[np.ndarray]:
    """Each paper's evidence vectors (title, then sentences), embedded in one call for the whole batch
    (the embedder batches similar lengths together, so short sentences pad little)."""
    texts = [sentence_texts(p)[1] for p in papers]
    flat = embedder.embed([t for rows in texts for t in rows]) if texts else np.zeros((0, 0))
    out, start = [], 0
    for rows in texts:
        out.append(np.asarray(flat[start : start + len(rows)], dtype=np.float32))
        start += len(rows)
    return out


class SentenceIndex:
    """Sentence vectors for selection and grounding: read from the side file, else embedded; kept (LRU)."""

    def __init__(self, embedder: Embedder, stored: SentenceFile | None = None, cache_size: int = 4096) -> None:
        self.embedder = embedder
        self.stored = stored
        self._cache: OrderedDict[str, Evidence] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def evidence(self, paper: Paper) -> Evidence:
        """The paper's sentences and their vectors (cached by content hash)."""
        key = f"{paper.id}:{paper.content_hash}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        raw, clean = sentence_texts(paper)
        vectors = self.stored.get(paper) if self.stored is not None else None
        if vectors is None or len(vectors) != len(clean):
            vectors = self.embedder.embed(clean)
        ev = Evidence(paper, raw, clean, vectors, f"{paper.title} {' '.join(clean[1:])}")
        with self._lock:
            self._cache[key] = ev
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ev
