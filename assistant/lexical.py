"""BM25 over the stored chunks, with `bm25s`: built once from the store, saved beside it, loaded memory-mapped.

The index lives in the store's side folder (`Store.side_dir`: beside an embedded store, or in the
data dir keyed by server and collection for a Chroma server) with a marker that records the
store's content version (`Store.content_version`, changed by every write) and the tokenizer. Opening
loads it when the marker matches and builds it again otherwise, so an unchanged index opens in
about the time it takes to map a few files, and any ingest, by this process or another, makes the
next open rebuild it. Building reads the chunks page by page (token ids only are kept, not the texts).

Scores are bm25s's own (Lucene BM25, k1 1.5, b 0.75) over the text LlamaIndex's `BM25Retriever`
indexed before this module existed ("title: <title>\n\n<chunk>", English stopwords, Snowball
stemmer, the same token pattern), so ranks are unchanged. Does not embed, and does not fuse: it
returns chunk ids and scores.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .types import Chunk

FORMAT = 1  # bump when what is saved changes: an older folder is then rebuilt
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
STOPWORDS = "en"
STEMMER_LANGUAGE = "english"
MARKER = "marker.json"


def lexical_text(chunk: Chunk) -> str:
    """What BM25 indexes for a chunk: its paper's title, then its text (the layout LlamaIndex gave it)."""
    return f"title: {chunk.title}\n\n{chunk.text}"


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer(STEMMER_LANGUAGE)


def _tokenizer_settings() -> dict[str, str]:
    return {"token_pattern": TOKEN_PATTERN, "stopwords": STOPWORDS, "stemmer": STEMMER_LANGUAGE}


@dataclass
class LexicalHit:
    """A chunk BM25 found, with its bm25s score."""

    chunk_id: str
    paper_id: str
    score: float


class LexicalIndex:
    """A bm25s index and, per row, the chunk id and paper id it stands for (both memory-mapped)."""

    def __init__(self, bm25: Any, chunk_ids: np.ndarray, paper_ids: np.ndarray) -> None:
        self._bm25 = bm25
        self._stemmer = _stemmer()
        self.chunk_ids = chunk_ids
        self.paper_ids = paper_ids

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def build(cls, pages: Iterable[list[Chunk]]) -> LexicalIndex | None:
        """Index chunks given in pages (None for no chunks). Each page is tokenized on its own and its
        token ids mapped into one vocabulary, so memory holds token ids, never the corpus text."""
        import bm25s

        vocab: dict[str, int] = {}
        corpus: list[list[int]] = []
        chunk_ids: list[str] = []
        paper_ids: list[str] = []
        stemmer = _stemmer()
        for page in pages:
            tokens = bm25s.tokenize([lexical_text(c) for c in page], stopwords=STOPWORDS, stemmer=stemmer,
                                    token_pattern=TOKEN_PATTERN, show_progress=False)
            to_global = {local: vocab.setdefault(token, len(vocab)) for token, local in tokens.vocab.items()}
            corpus.extend([to_global[t] for t in doc] for doc in tokens.ids)
            chunk_ids.extend(c.id for c in page)
            paper_ids.extend(c.paper_id for c in page)
        if not corpus:
            return None
        bm25 = bm25s.BM25()
        bm25.index((corpus, vocab), show_progress=False)
        return cls(bm25, np.array(chunk_ids, dtype=bytes), np.array(paper_ids, dtype=bytes))

    def save(self, folder: Path, version: str) -> None:
        """Write the index to `folder`, replacing what is there only once the new copy is complete."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        fresh = folder.with_name(f"{folder.name}.new-{os.getpid()}")
        shutil.rmtree(fresh, ignore_errors=True)
        self._bm25.save(str(fresh), show_progress=False)
        np.save(fresh / "chunk_ids.npy", self.chunk_ids)
        np.save(fresh / "paper_ids.npy", self.paper_ids)
        marker = {"format": FORMAT, "version": version, "rows": len(self), "tokenizer": _tokenizer_settings()}
        (fresh / MARKER).write_text(json.dumps(marker))
        old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        fresh.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, version: str) -> LexicalIndex | None:
        """The saved index when its marker matches `version` and today's tokenizer, else None."""
        import bm25s

        try:
            marker = json.loads((folder / MARKER).read_text())
        except (OSError, ValueError):
            return None
        if marker != {"format": FORMAT, "version": version, "rows": marker.get("rows"),
                      "tokenizer": _tokenizer_settings()}:
            return None
        try:
            bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
            chunk_ids = np.load(folder / "chunk_ids.npy", mmap_mode="r")
            paper_ids = np.load(folder / "paper_ids.npy", mmap_mode="r")
        except (OSError, ValueError):  # replaced by another process meanwhile, or damaged: build it again
            return None
        if not len(chunk_ids) == len(paper_ids) == marker["rows"]:
            return None
        return cls(bm25, chunk_ids, paper_ids)

    def chunks_with(self, word: str) -> int:
        """How many indexed chunks use `word` (as BM25 stems it); 0 for a stopword or an unknown word."""
        import bm25s

        tokens = bm25s.tokenize(word, stemmer=self._stemmer, token_pattern=TOKEN_PATTERN, show_progress=False)
        ids = [self._bm25.vocab_dict.get(token) for token in tokens.vocab]
        if len(ids) != 1 or ids[0] is None:
            return 0
        indptr = self._bm25.scores["indptr"]
        return int(indptr[ids[0] + 1] - indptr[ids[0]])

    def search(self, query: str, k: int, paper_ids: list[str] | None = None) -> list[LexicalHit]:
        """The top `k` chunks for `query` with a positive score, best first; with `paper_ids`, only theirs."""
        import bm25s

        tokens = bm25s.tokenize(query, stemmer=self._stemmer, token_pattern=TOKEN_PATTERN, show_progress=False)
        if not tokens.vocab:
            return []
        mask = None
        if paper_ids:
            mask = np.isin(self.paper_ids, np.array(paper_ids, dtype=bytes)).astype(np.float32)
        try:
            rows, scores = self._bm25.retrieve(tokens, k=min(k, len(self)), weight_mask=mask, show_progress=False)
        except (ValueError, IndexError, KeyError):  # a query of only unknown words
            return []
        return [LexicalHit(self.chunk_ids[r].decode(), self.paper_ids[r].decode(), float(s))
                for r, s in zip(rows[0], scores[0]) if s > 0]


def open_lexical(folder: Path, version: str, pages: Iterable[list[Chunk]]) -> LexicalIndex | None:
    """The saved index if it is current, else one built from `pages` and saved (None for an empty store)."""
    found = LexicalIndex.load(folder, version)
    if found is not None:
        return found
    started = time.perf_counter()
    built = LexicalIndex.build(pages)
    if built is None:
        return None
    built.save(folder, version)
    print(f"paper-assistant: BM25 index of {len(built)} chunks built in {time.perf_counter() - started:.1f} s "
          f"and saved in {folder}", file=sys.stderr)
    return built
