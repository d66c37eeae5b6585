"""Question -> ranked Passages: dense (Chroma) + BM25, fused by reciprocal rank, one passage per paper.

Dense search is LlamaIndex over Chroma; BM25 is `lexical.LexicalIndex` (bm25s, saved beside the
store and memory-mapped). `HybridRetriever` is a LlamaIndex `BaseRetriever`, so it can feed any
LlamaIndex query engine (the eval baselines use it that way). LlamaIndex nodes are converted to
`Passage` here and go no further. Papers are read from the store when a question meets them
(`PaperRecords`), and their sentence vectors come from the side file written at ingest
(`sentences.SentenceIndex`), so opening holds neither the corpus nor its vectors in memory.
Does not call the chat model.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from .backends import Embedder
from .config import RetrievalSettings
from .errors import StoreError
from .lexical import LexicalIndex, open_lexical
from .sentences import Evidence, SentenceIndex
from .store import Store, chunk_node
from .text import content_words, count_tokens, named_terms, split_sentences
from .types import Paper, Passage

__all__ = ["Evidence", "HybridRetriever", "PaperRecords", "SentenceIndex", "SentenceSelector", "anchored"]

PAPER_PAGE = 500  # papers read per store call when the whole corpus is listed
QUANTITY_CUES = re.compile(
    r"\b(how (many|much|large|big|long|fast|often)|by how|what (percentage|fraction|share|number|size)|"
    r"accuracy|perplexity|score|rate|speed-?up|error|fid|bleu|f1|gain|improvement|reduction|parameters|tokens)\b",
    re.IGNORECASE,
)


_FIGURE = re.compile(r"(?<![\w.-])\d[\d.,]*(?:[kmbt]\b|%|\b)(?:\s*(?:thousand|million|billion|trillion|[kmbt])\b)?", re.IGNORECASE)
_NEXT_WORDS = re.compile(r"\W*([A-Za-z][\w-]*)(?:\W+([A-Za-z][\w-]*))?")


def figures_bonus(sentence: str, question_words: set[str], asks_quantity: bool, weights: RetrievalSettings) -> float:
    """The evidence bonus of a sentence's figures: none for a sentence without one (a digit inside a
    name such as "Orion-14B" is not a figure), more for a quantity question, and more again when a
    figure is followed by a word the question uses (the unit it asks about)."""
    found = list(_FIGURE.finditer(sentence))
    if not found:
        return 0.0
    bonus = weights.quantity_bonus if asks_quantity else weights.number_bonus
    if asks_quantity:
        for match in found:
            following = _NEXT_WORDS.match(sentence, match.end())
            if following and content_words(" ".join(w for w in following.groups() if w)) & question_words:
                return bonus + weights.unit_bonus
    return bonus


class LlamaIndexEmbedding(BaseEmbedding):
    """Our embedder as a LlamaIndex embedding model (no downloads, no network)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.name, embed_batch_size=64, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._embedder.embed([query])[0]]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._embedder.embed(texts)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class SentenceSelector:
    """Picks the sentences of an abstract that bear on a question, from the sentence index's vectors."""

    def __init__(self, sentences: SentenceIndex, weights: RetrievalSettings) -> None:
        self.sentences = sentences
        self.weights = weights

    def select(self, paper: Paper, question: str, question_vector: np.ndarray, budget_tokens: int) -> str:
        """The abstract's sentences most relevant to the question, within the budget, in abstract order."""
        ev = self.sentences.evidence(paper)
        words = content_words(question)
        asks_quantity = bool(QUANTITY_CUES.search(question))
        scores = []
        for i in range(1, len(ev.clean_sentences)):
            overlap = len(words & content_words(ev.clean_sentences[i])) / max(len(words), 1)
            bonus = figures_bonus(ev.clean_sentences[i], words, asks_quantity, self.weights)
            scores.append((float(ev.vectors[i] @ question_vector) + self.weights.lexical_weight * overlap + bonus, i))
        chosen: list[int] = []
        used = 0
        for _, i in sorted(scores, reverse=True):
            cost = count_tokens(ev.clean_sentences[i])
            if chosen and used + cost > budget_tokens:
                continue
            chosen.append(i)
            used += cost
        parts: list[str] = []
        for n, i in enumerate(sorted(chosen)):
            if n and i != sorted(chosen)[n - 1] + 1:
                parts.append("...")
            parts.append(ev.clean_sentences[i])
        return " ".join(parts)


class PaperRecords(Mapping[str, Paper]):
    """The stored papers as a read-only mapping by id: (id, title) of every paper read at open and kept
    (tens of bytes a paper), the papers themselves read from the store when asked for and kept (LRU).

    Membership, length and iteration (title order, then id) use the kept titles, so they answer
    while a Chroma server is down; `values()` streams the papers in that order a page at a time, so
    listing the corpus never holds every abstract at once. Like the old in-memory table, it shows
    the papers stored when it was opened."""

    def __init__(self, store: Store, cache_size: int = 4096) -> None:
        self.store = store
        self._cache: OrderedDict[str, Paper] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._titles = store.paper_titles()
        self._known = {pid for pid, _ in self._titles}

    def get_many(self, ids: list[str]) -> dict[str, Paper]:
        """The papers with these ids that exist, reading the ones not kept in one store call."""
        ids = [pid for pid in dict.fromkeys(ids) if pid in self._known]
        with self._lock:
            found = {pid: self._cache[pid] for pid in ids if pid in self._cache}
            for pid in found:
                self._cache.move_to_end(pid)
        missing = [pid for pid in ids if pid not in found]
        if missing:
            read = self.store.papers_by_id(missing)
            found.update(read)
            with self._lock:
                self._cache.update(read)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return found

    def titles(self) -> list[tuple[str, str]]:
        """(id, title) of every paper, in title order."""
        return self._titles

    def __getitem__(self, paper_id: str) -> Paper:
        found = self.get_many([paper_id])
        if paper_id not in found:
            raise KeyError(paper_id)
        return found[paper_id]

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self._known

    def __len__(self) -> int:
        return len(self._titles)

    def __iter__(self) -> Iterator[str]:
        return (pid for pid, _ in self._titles)

    def values(self) -> Iterator[Paper]:  # type: ignore[override]
        """Every paper, in title order, read a page at a time."""
        for start in range(0, len(self._titles), PAPER_PAGE):
            ids = [pid for pid, _ in self._titles[start : start + PAPER_PAGE]]
            page = self.store.papers_by_id(ids)
            yield from (page[pid] for pid in ids if pid in page)


def question_parts(question: str) -> list[str]:
    """The sentences of a question of several that carry at least two content words; none for a
    one-sentence question. Each is searched on its own too, so a real question after a paragraph of
    preamble (or of injected instructions) still finds its paper."""
    parts = [s for s in split_sentences(question) if len(content_words(s)) >= 2]
    return parts if len(parts) >= 2 else []


RARE_CHUNKS = 3  # a question word this few chunks use points at the paper that uses it (`covering`)


@dataclass
class Hit:
    """A chunk found by one or both retrievers."""

    node: TextNode
    fused: float = 0.0
    dense: float = 0.0


class HybridRetriever(BaseRetriever):
    """Dense + BM25 chunk retrieval fused with reciprocal rank; scores are fused RRF values."""

    def __init__(self, store: Store, settings: RetrievalSettings, sentences: SentenceIndex) -> None:
        from llama_index.core import VectorStoreIndex

        super().__init__()
        self.settings = settings
        self.sentences = sentences
        self.selector = SentenceSelector(sentences, settings)
        self.store = store
        self.location = store.location
        self.papers = PaperRecords(store)
        self.embed_model = LlamaIndexEmbedding(store.embedder)
        self.index = VectorStoreIndex.from_vector_store(store.vector_store, embed_model=self.embed_model)
        # The version is read before the chunks: a write during the build leaves the saved copy stale.
        self._bm25: LexicalIndex | None = open_lexical(store.side_dir / "bm25", store.content_version(),
                                                       store.chunk_pages())

    def _dense(self, query: QueryBundle, paper_ids: list[str] | None) -> list[NodeWithScore]:
        filters = None
        if paper_ids:
            filters = MetadataFilters(
                filters=[MetadataFilter(key="paper_id", value=paper_ids, operator=FilterOperator.IN)]
            )
        retriever = self.index.as_retriever(similarity_top_k=self.settings.candidates, filters=filters)
        try:
            return retriever.retrieve(query)
        except Exception as exc:  # noqa: BLE001 - chromadb raises transport, HTTP and its own errors alike
            raise StoreError(f"the vector store at {self.location} did not answer ({exc.__class__.__name__}: "
                             f"{exc}); check that the Chroma server runs") from None

    def is_rare(self, word: str) -> bool:
        """True for a word at most `RARE_CHUNKS` chunks of the collection use (and at least one), by the
        BM25 index's counts: no pass over the abstracts."""
        return self._bm25 is not None and 0 < self._bm25.chunks_with(word) <= RARE_CHUNKS

    def _sparse(self, query: str, paper_ids: list[str] | None) -> list[NodeWithScore]:
        if self._bm25 is None:
            return []
        found = self._bm25.search(query, self.settings.candidates, paper_ids)
        chunks = self.store.chunks_by_id([h.chunk_id for h in found])
        return [NodeWithScore(node=chunk_node(chunks[h.chunk_id]), score=h.score) for h in found if h.chunk_id in chunks]

    def _cover_names(self, question: str, order: list[str], k: int, paper_ids: list[str] | None) -> list[str]:
        """The top k papers, made to include a paper for each method-like name the question uses
        ("How many languages do ModelA and ModelB cover?"): a name no top paper mentions brings in
        the best-ranked paper that does (from the fused ranking, else BM25 on the name alone), in
        place of the lowest-ranked top paper that is not the only one to mention some name."""
        top = order[:k]
        names = sorted(t for t in named_terms(question) if len(t) >= 4)
        if len(names) < 2:  # one name: the ranking already centres on it
            return top
        self.papers.get_many(order)  # one store read for the papers looked at below
        for name in names:
            if any(_mentions(self.papers[pid], name) for pid in top):
                continue
            found = next((pid for pid in order[k:] if _mentions(self.papers[pid], name)), None)
            if found is None:
                by_name = [str(n.node.metadata["paper_id"]) for n in self._sparse(name, paper_ids)]
                known = self.papers.get_many(by_name)
                found = next((pid for pid in by_name if _mentions(known.get(pid) or _NO_PAPER, name)), None)
            spare = [pid for pid in top if not any(  # not the only top paper that mentions some name
                _mentions(self.papers[pid], n) and not any(_mentions(self.papers[q], n) for q in top if q != pid)
                for n in names)]
            if found is not None and found not in top and spare:
                top[top.index(spare[-1])] = found
        return top

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=h.node, score=h.fused) for h in self.hits(query_bundle.query_str)]

    def hits(
        self, question: str, paper_ids: list[str] | None = None, mode: str = "hybrid",
        question_vector: np.ndarray | None = None, part_vectors: list[np.ndarray] | None = None,
    ) -> list[Hit]:
        """Chunks ranked by fused reciprocal rank; mode 'dense' or 'bm25' uses one retriever only.

        A `question_vector` already computed is reused instead of embedding the question again.
        `part_vectors` (one per sentence of a question of several) query the store too; a chunk's
        dense rank and score are then its best over the whole question and its parts.
        """
        hits: dict[str, Hit] = {}
        if mode in ("hybrid", "dense"):
            vectors = [None] if question_vector is None else [question_vector, *(part_vectors or [])]
            best: dict[str, tuple[float, NodeWithScore]] = {}
            for vector in vectors:
                embedding = None if vector is None else [float(x) for x in vector]
                for found in self._dense(QueryBundle(query_str=question, embedding=embedding), paper_ids):
                    # Chroma's cosine distance d reaches LlamaIndex as exp(-d); undo that to get cosine back.
                    cosine = 1.0 + math.log(max(found.score or 1e-9, 1e-9))
                    if found.node.node_id not in best or cosine > best[found.node.node_id][0]:
                        best[found.node.node_id] = (cosine, found)
            ranked = sorted(best.values(), key=lambda pair: pair[0], reverse=True)[: self.settings.candidates]
            for rank, (cosine, found) in enumerate(ranked):
                hit = hits.setdefault(found.node.node_id, Hit(node=found.node))  # type: ignore[arg-type]
                hit.fused += 1.0 / (self.settings.rrf_k + rank + 1)
                hit.dense = cosine
        if mode in ("hybrid", "bm25"):
            for rank, found in enumerate(self._sparse(question, paper_ids)):
                hit = hits.setdefault(found.node.node_id, Hit(node=found.node))  # type: ignore[arg-type]
                hit.fused += 1.0 / (self.settings.rrf_k + rank + 1)
        return sorted(hits.values(), key=lambda h: h.fused, reverse=True)

    def passages(
        self, question: str, top_k: int | None = None, paper_ids: list[str] | None = None, mode: str | None = None
    ) -> list[Passage]:
        """The top papers in rank order, each with its abstract's sentences that bear on the question.

        `mode` (default: the settings') is 'hybrid', 'dense' or 'bm25'. With BM25 alone no chunk has a
        cosine, so a paper's dense score is then its best sentence's similarity to the question."""
        k = top_k or self.settings.top_k
        mode = mode or self.settings.mode
        parts = question_parts(question) if self.settings.split_question else []
        vectors = self.sentences.embedder.embed([question, *parts])
        question_vector = vectors[0]
        ranked: dict[str, Hit] = {}
        dense_of: dict[str, float] = {}
        for hit in self.hits(question, paper_ids, mode, question_vector, list(vectors[1:])):
            pid = str(hit.node.metadata["paper_id"])
            dense_of[pid] = max(dense_of.get(pid, 0.0), hit.dense)
            ranked.setdefault(pid, hit)
        order = [pid for pid in ranked if pid in self.papers]
        self.papers.get_many(order[:k])  # one store read for the papers the passages need
        top = self._cover_names(question, order, k, paper_ids)
        if not top:
            return []
        for pid in top:
            dense_of.setdefault(pid, 0.0)
        if mode == "bm25":
            for pid in top:
                dense_of[pid] = float((self.sentences.evidence(self.papers[pid]).vectors @ question_vector).max())
        return [
            Passage(
                paper_id=pid,
                title=self.papers[pid].title,
                text=self.selector.select(
                    self.papers[pid], question, question_vector, self.settings.passage_tokens * (2 if rank == 0 else 1)
                ),
                score=ranked[pid].fused if pid in ranked else 0.0,
                dense_score=dense_of[pid],
            )
            for rank, pid in enumerate(top)
        ]


_NO_PAPER = Paper(id="", title="", abstract="", raw_abstract="", source="", content_hash="")


def _mentions(paper: Paper, name: str) -> bool:
    text = f"{paper.title} {paper.abstract}".lower()
    return name in text or name.replace("-", " ") in text


def anchored(question: str, passages: list[Passage], papers: Mapping[str, Paper], depth: int = 2) -> bool:
    """True when a name from the question (a method-like term such as a new model's name) appears in
    one of the top papers: lexical evidence the embedder may miss for a name it has never seen."""
    names = {t for t in named_terms(question) if len(t) >= 4}
    for passage in passages[:depth]:
        paper = papers.get(passage.paper_id)
        if paper is not None:
            text = f"{paper.title} {paper.abstract}".lower()
            if any(t in text or t.replace("-", " ") in text for t in names):
                return True
    return False
