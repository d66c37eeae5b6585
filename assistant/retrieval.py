"""Question -> ranked Passages: dense (Chroma) + BM25, fused by reciprocal rank, one passage per paper.

Both retrievers are LlamaIndex retrievers; `HybridRetriever` is a LlamaIndex `BaseRetriever` too,
so it can feed any LlamaIndex query engine (the eval baselines use it that way). LlamaIndex
nodes are converted to `Passage` here and go no further. Does not call the chat model.
"""

from __future__ import annotations

import math
import threading
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
from .store import Store
from .types import Chunk, Passage


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


def to_node(chunk: Chunk) -> TextNode:
    """A chunk as a LlamaIndex node; the title takes part in BM25 and embedding text."""
    return TextNode(
        id_=chunk.id,
        text=chunk.text,
        metadata={"paper_id": chunk.paper_id, "title": chunk.title, "chunk_index": chunk.index},
        excluded_embed_metadata_keys=["paper_id", "chunk_index"],
        excluded_llm_metadata_keys=["paper_id", "chunk_index"],
    )


@dataclass
class Hit:
    """A chunk found by one or both retrievers."""

    node: TextNode
    fused: float = 0.0
    dense: float = 0.0


class HybridRetriever(BaseRetriever):
    """Dense + BM25 chunk retrieval fused with reciprocal rank; scores are fused RRF values."""

    def __init__(self, store: Store, settings: RetrievalSettings) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.retrievers.bm25 import BM25Retriever

        super().__init__()
        self.settings = settings
        self.embed_model = LlamaIndexEmbedding(store.embedder)
        self.index = VectorStoreIndex.from_vector_store(store.vector_store, embed_model=self.embed_model)
        chunks = store.all_chunks()
        self._nodes = [to_node(c) for c in chunks]
        self._bm25 = (
            BM25Retriever.from_defaults(nodes=self._nodes, similarity_top_k=min(settings.candidates, len(chunks)))
            if chunks
            else None
        )
        self._paper_of_row = np.array([c.paper_id for c in chunks])
        self._lock = threading.Lock()

    def _dense(self, query: QueryBundle, paper_ids: list[str] | None) -> list[NodeWithScore]:
        filters = None
        if paper_ids:
            filters = MetadataFilters(
                filters=[MetadataFilter(key="paper_id", value=paper_ids, operator=FilterOperator.IN)]
            )
        retriever = self.index.as_retriever(similarity_top_k=self.settings.candidates, filters=filters)
        return retriever.retrieve(query)

    def _sparse(self, query: str, paper_ids: list[str] | None) -> list[NodeWithScore]:
        if self._bm25 is None:
            return []
        import bm25s

        tokens = bm25s.tokenize(query, stemmer=self._bm25.stemmer, token_pattern=self._bm25.token_pattern,
                                show_progress=False)
        if not tokens.vocab:
            return []
        mask = np.isin(self._paper_of_row, paper_ids).astype(np.float32) if paper_ids else None
        k = min(self.settings.candidates, len(self._nodes))
        try:
            rows, scores = self._bm25.bm25.retrieve(tokens, k=k, weight_mask=mask, show_progress=False)
        except (ValueError, IndexError, KeyError):  # a query of only unknown words
            return []
        return [
            NodeWithScore(node=self._nodes[int(r)], score=float(s)) for r, s in zip(rows[0], scores[0]) if s > 0
        ]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=h.node, score=h.fused) for h in self.hits(query_bundle.query_str)]

    def hits(self, question: str, paper_ids: list[str] | None = None, mode: str = "hybrid") -> list[Hit]:
        """Chunks ranked by fused reciprocal rank; mode 'dense' or 'bm25' uses one retriever only."""
        bundle = QueryBundle(query_str=question)
        hits: dict[str, Hit] = {}
        if mode in ("hybrid", "dense"):
            for rank, found in enumerate(self._dense(bundle, paper_ids)):
                hit = hits.setdefault(found.node.node_id, Hit(node=found.node))  # type: ignore[arg-type]
                hit.fused += 1.0 / (self.settings.rrf_k + rank + 1)
                # Chroma's cosine distance d reaches LlamaIndex as exp(-d); undo that to get cosine back.
                hit.dense = 1.0 + math.log(max(found.score or 1e-9, 1e-9))
        if mode in ("hybrid", "bm25"):
            for rank, found in enumerate(self._sparse(question, paper_ids)):
                hit = hits.setdefault(found.node.node_id, Hit(node=found.node))  # type: ignore[arg-type]
                hit.fused += 1.0 / (self.settings.rrf_k + rank + 1)
        return sorted(hits.values(), key=lambda h: h.fused, reverse=True)

    def passages(
        self, question: str, top_k: int | None = None, paper_ids: list[str] | None = None, mode: str = "hybrid"
    ) -> list[Passage]:
        """The best chunk of each of the top papers, in rank order."""
        k = top_k or self.settings.top_k
        best: dict[str, Passage] = {}
        dense_of: dict[str, float] = {}
        for hit in self.hits(question, paper_ids, mode):
            pid = str(hit.node.metadata["paper_id"])
            dense_of[pid] = max(dense_of.get(pid, 0.0), hit.dense)
            if pid not in best:
                best[pid] = Passage(
                    paper_id=pid, title=str(hit.node.metadata["title"]), text=hit.node.get_content(), score=hit.fused
                )
        ranked = list(best.values())[:k]
        return [p.model_copy(update={"dense_score": dense_of[p.paper_id]}) for p in ranked]
