"""Chroma behind LlamaIndex: the chunk collection (vectors) and the paper collection (abstracts).

The store is embedded (`PersistentClient`, a folder) or a Chroma server (`HttpClient`), chosen
by settings; the code path is the same. Collection names carry a fingerprint of embedder +
chunking, so changing either builds a new index instead of mixing vectors. Ingest is
incremental and idempotent: chunk ids hash their content, so an unchanged corpus embeds
nothing, a changed paper replaces its chunks, and a crash mid-ingest is repaired by the next
run. Chroma never gets an embedding function of its own: every vector comes from our embedder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backends import Embedder
from .chunking import chunk_corpus, chunking_fingerprint
from .config import Settings
from .errors import StoreError
from .types import Chunk, Paper

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

EMBED_BATCH = 64
WRITE_BATCH = 256
# Chroma reads or deletes the rows of one call with one SQL statement, and SQLite allows 32766
# variables: an unpaged read of a collection past ~32k records fails ("too many SQL variables").
READ_PAGE = 5000


def index_fingerprint(embedder_name: str, settings: Settings) -> str:
    """Short hash of everything that decides the stored vectors."""
    basis = f"{embedder_name}|{chunking_fingerprint(settings.chunking)}|title-prefixed"
    return hashlib.sha1(basis.encode()).hexdigest()[:10]


def embed_text(chunk_title: str, chunk_text: str) -> str:
    """The text a chunk is embedded as: its paper title, then the chunk."""
    return f"{chunk_title}\n{chunk_text}"


@dataclass
class IngestReport:
    """What an ingest run did."""

    papers: int
    chunks_total: int
    chunks_added: int
    chunks_removed: int
    papers_removed: int
    seconds: float


@dataclass
class IndexStatus:
    """What the index holds and whether it matches the settings."""

    fingerprint: str
    location: str
    collection: str
    papers: int
    chunks: int
    other_indexes: list[str]


def _client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    try:
        if settings.store.kind == "http":
            return chromadb.HttpClient(host=settings.store.host, port=settings.store.port, settings=chroma_settings)
        settings.store_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001 - chromadb raises several unrelated types for an unreachable server
        raise StoreError(f"cannot open the Chroma store at {describe_location(settings)} ({exc}); "
                         "check the store settings or start the Chroma server") from None


def describe_location(settings: Settings) -> str:
    """Where the store lives, for messages."""
    if settings.store.kind == "http":
        return f"http://{settings.store.host}:{settings.store.port}"
    return str(settings.store_path)


class Store:
    """The two Chroma collections of one index fingerprint, and the LlamaIndex vector store over chunks."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.settings = settings
        self.embedder = embedder
        self.fingerprint = index_fingerprint(embedder.name, settings)
        self.location = describe_location(settings)
        self.name = f"{settings.store.collection_prefix}-{self.fingerprint}"
        self._client = _client(settings)
        try:
            space = {"hnsw:space": "cosine"}
            self.chunks = self._client.get_or_create_collection(
                self.name, metadata=space, embedding_function=None
            )
            self.papers = self._client.get_or_create_collection(
                f"{self.name}-papers", metadata=space, embedding_function=None
            )
        except Exception as exc:  # noqa: BLE001 - as above, for a collection on a server
            raise StoreError(f"cannot open collection {self.name} at {self.location} ({exc})") from None
        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)

    def status(self) -> IndexStatus:
        """Counts and location of this index."""
        prefix = f"{self.settings.store.collection_prefix}-"
        names = [getattr(c, "name", c) for c in self._client.list_collections()]
        others = sorted(n for n in names if n.startswith(prefix) and not n.startswith(self.name))
        return IndexStatus(self.fingerprint, self.location, self.name, self.papers.count(), self.chunks.count(), others)

    def is_empty(self) -> bool:
        """True when nothing has been ingested under this fingerprint."""
        return self.chunks.count() == 0

    def ingest(
        self, papers: list[Paper], prune: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> IngestReport:
        """Add new papers, replace changed ones, and with `prune` remove papers not in `papers`."""
        from llama_index.core.schema import TextNode

        started = time.perf_counter()
        chunks = chunk_corpus(papers, self.settings.chunking)
        stored = _get_all(self.chunks, ["metadatas"])
        stored_ids = set(stored["ids"])
        stored_paper_of = {i: (m or {}).get("paper_id") for i, m in zip(stored["ids"], stored["metadatas"] or [])}
        new = [c for c in chunks if c.id not in stored_ids]
        wanted_ids = {c.id for c in chunks}
        corpus_ids = {p.id for p in papers}
        stale = [i for i, pid in stored_paper_of.items() if i not in wanted_ids and (prune or pid in corpus_ids)]

        # Papers first (their abstract is needed to quote), then chunks; both writes are upserts by id.
        stored_papers = _get_all(self.papers, ["metadatas"])
        paper_hash = {i: (m or {}).get("content_hash") for i, m in zip(stored_papers["ids"], stored_papers["metadatas"] or [])}
        changed_papers = [p for p in papers if paper_hash.get(p.id) != p.content_hash]
        for start in range(0, len(changed_papers), WRITE_BATCH):
            batch = changed_papers[start : start + WRITE_BATCH]
            vectors = self.embedder.embed([p.title for p in batch])
            self.papers.upsert(
                ids=[p.id for p in batch],
                embeddings=vectors.tolist(),
                documents=[p.raw_abstract for p in batch],
                metadatas=[
                    {"title": p.title, "abstract": p.abstract, "source": p.source, "content_hash": p.content_hash}
                    for p in batch
                ],
            )

        done = 0
        for start in range(0, len(new), EMBED_BATCH):
            batch = new[start : start + EMBED_BATCH]
            vectors = self.embedder.embed([embed_text(c.title, c.text) for c in batch])
            nodes = [_to_node(TextNode, c, v.tolist()) for c, v in zip(batch, vectors)]
            self.vector_store.add(nodes)
            done += len(batch)
            if progress:
                progress(done, len(new))

        for start in range(0, len(stale), WRITE_BATCH):
            self.chunks.delete(ids=stale[start : start + WRITE_BATCH])
        removed_papers: list[str] = []
        if prune:
            removed_papers = [i for i in stored_papers["ids"] if i not in corpus_ids]
            for start in range(0, len(removed_papers), WRITE_BATCH):
                self.papers.delete(ids=removed_papers[start : start + WRITE_BATCH])
        return IngestReport(
            papers=self.papers.count(),
            chunks_total=self.chunks.count(),
            chunks_added=len(new),
            chunks_removed=len(stale),
            papers_removed=len(removed_papers),
            seconds=time.perf_counter() - started,
        )

    def all_chunks(self) -> list[Chunk]:
        """Every stored chunk (for the BM25 index)."""
        got = _get_all(self.chunks, ["documents", "metadatas"])
        chunks = []
        for cid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or []):
            meta = meta or {}
            chunks.append(
                Chunk(
                    id=cid,
                    paper_id=str(meta.get("paper_id", "")),
                    title=str(meta.get("title", "")),
                    text=doc or "",
                    index=int(meta.get("chunk_index", 0) or 0),
                    content_hash=str(meta.get("content_hash", "")),
                )
            )
        return chunks

    def all_papers(self) -> list[Paper]:
        """Every stored paper, sorted by title (case-insensitive), then id."""
        got = _get_all(self.papers, ["documents", "metadatas"])
        papers = [_to_paper(pid, doc, meta) for pid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])]
        return sorted(papers, key=lambda p: (p.title.lower(), p.id))


def _get_all(collection: Any, include: list[str]) -> dict[str, list[Any]]:
    """Every record of a collection (ids and `include` fields), read in pages of READ_PAGE."""
    got: dict[str, list[Any]] = {"ids": [], **{key: [] for key in include}}
    while True:
        page = collection.get(include=include, limit=READ_PAGE, offset=len(got["ids"]))
        for key, values in got.items():
            values.extend(page[key] or [])
        if len(page["ids"]) < READ_PAGE:
            return got


def _to_node(node_cls: Any, chunk: Chunk, vector: list[float]) -> Any:
    return node_cls(
        id_=chunk.id,
        text=chunk.text,
        embedding=vector,
        metadata={
            "paper_id": chunk.paper_id,
            "title": chunk.title,
            "chunk_index": chunk.index,
            "content_hash": chunk.content_hash,
        },
        excluded_embed_metadata_keys=["paper_id", "chunk_index", "content_hash"],
        excluded_llm_metadata_keys=["paper_id", "chunk_index", "content_hash"],
    )


def _to_paper(pid: str, doc: str | None, meta: Any) -> Paper:
    meta = meta or {}
    return Paper(
        id=pid,
        title=str(meta.get("title", "")),
        abstract=str(meta.get("abstract", doc or "")),
        raw_abstract=doc or "",
        source=str(meta.get("source", "")),
        content_hash=str(meta.get("content_hash", "")),
    )
