"""Chroma behind LlamaIndex: the chunk collection (vectors) and the paper records; sentence vectors beside them.

The store is embedded (`PersistentClient`, a folder) or a Chroma server (`HttpClient`), chosen
by settings; the code path is the same. Collection names carry a fingerprint of embedder
(model and dimension) + chunking, so changing either builds a new index instead of mixing
vectors; a new collection records what built it, so `explain` can say why one was chosen.

Paper records (title, abstract, source, content hash) live in the `<name>-records` collection
with a constant one-dimensional vector: Chroma wants a vector per record and nothing searches
papers by vector, so they cost no HNSW memory. (Indexes built before kept a title vector per paper
in `<name>-papers`; that collection is left alone, its chunks are reused, and the next ingest
writes the records without embedding a chunk again.) The records collection also carries the
content version, changed before and after every write, which derived indexes (BM25) compare with.
Each paper's sentence vectors are embedded at ingest and written to a SQLite side file
(`sentences.SentenceFile`) in `side_dir`, so no question embeds an abstract.

Ingest streams: papers go through in batches of `store.ingest_batch`, and three stages overlap (a
reader thread parses and chunks, the caller's thread looks up what is stored and embeds only
what is missing, a writer thread writes), joined by queues QUEUE_DEPTH deep, so memory stays
bounded whatever the corpus size. It is incremental and idempotent: chunk ids hash their
content, so an unchanged corpus embeds nothing and a changed paper replaces its chunks. Within a
batch the paper record is written last and marks the batch done (after its chunks and its sentence
vectors), so an ingest killed at any point resumes where it stopped on the next run, without
re-embedding what is stored.
Chroma never gets an embedding function of its own: every vector comes from our embedder.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Embedder
from .chunking import chunk_paper, chunking_fingerprint
from .config import Settings
from .corpus import scan_corpus
from .errors import StoreError
from .sentences import SentenceFile, embed_sentences
from .types import Chunk, Paper

QUEUE_DEPTH = 2  # batches waiting between two stages; bounds ingest memory
WRITE_BATCH = 256
# Chroma reads or deletes the rows of one call with one SQL statement, and SQLite allows 32766
# variables: an unpaged read of a collection past ~32k records fails ("too many SQL variables").
READ_PAGE = 5000
SIDE_FORMAT = 1  # in the side file's name: a file of another layout is left alone and a new one written
RECORD_VECTOR = [0.0]  # paper records are found by id only: one constant dimension, no HNSW cost


def index_fingerprint(embedder_name: str, settings: Settings) -> str:
    """Short hash of everything that decides the stored vectors.

    `embedder_name` names model and dimension (a server embedder's name is `openai:<model>:<dim>d`;
    the packaged model's name fixes 384), so indexes built before server embedders existed keep
    their fingerprint."""
    basis = f"{embedder_name}|{chunking_fingerprint(settings.chunking)}|title-prefixed"
    return hashlib.sha1(basis.encode()).hexdigest()[:10]


def embed_text(chunk_title: str, chunk_text: str) -> str:
    """The text a chunk is embedded as: its paper title, then the chunk."""
    return f"{chunk_title}\n{chunk_text}"


@dataclass
class IngestReport:
    """What an ingest run did. `papers_read` counts papers in the input, `bad_lines` the lines skipped."""

    papers: int
    chunks_total: int
    chunks_added: int
    chunks_removed: int
    papers_removed: int
    seconds: float
    papers_read: int = 0
    bad_lines: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class IndexStatus:
    """What the index holds and whether it matches the settings."""

    fingerprint: str
    location: str
    collection: str
    papers: int
    chunks: int
    other_indexes: list[str]
    embedder: str = ""


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
    """The chunk and record collections of one index fingerprint, the LlamaIndex vector store over chunks,
    and the side folder (sentence vectors, derived indexes)."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.settings = settings
        self.embedder = embedder
        self.fingerprint = index_fingerprint(embedder.name, settings)
        self.location = describe_location(settings)
        self.name = f"{settings.store.collection_prefix}-{self.fingerprint}"
        self._client = _client(settings)
        # Recorded on new collections only (existing ones keep theirs), for `explain`.
        built_by = {"hnsw:space": "cosine", "embedder": embedder.name, "dim": embedder.dim,
                    "chunking": chunking_fingerprint(settings.chunking)}
        try:
            self.chunks = self._client.get_or_create_collection(
                self.name, metadata=built_by, embedding_function=None
            )
            records_meta = {k: v for k, v in built_by.items() if k != "hnsw:space"} | {"version": ""}
            self.papers = self._client.get_or_create_collection(
                f"{self.name}-records", metadata=records_meta, embedding_function=None
            )
        except Exception as exc:  # noqa: BLE001 - as above, for a collection on a server
            raise StoreError(f"cannot open collection {self.name} at {self.location} ({exc})") from None
        self._widen_search(settings.store.search_breadth)
        self.vector_store = ChromaVectorStore(chroma_collection=self.chunks)
        self.sentences = SentenceFile(self.side_dir / f"sentences.v{SIDE_FORMAT}.sqlite")

    def _widen_search(self, breadth: int) -> None:
        """Set the chunks collection's HNSW search breadth (`ef_search`) when it differs. Chroma rebuilds
        the graph of chunks not yet flushed to disk (under its `sync_threshold`) at each open, with
        several threads, so the graph differs between processes; at Chroma's default breadth a query then
        missed its nearest chunk in 4 of 15 processes over the seeds, and in none of 27 at 500."""
        hnsw = (self.chunks.configuration or {}).get("hnsw") or {}
        if hnsw.get("ef_search") == breadth:
            return
        try:
            self.chunks.modify(configuration={"hnsw": {"ef_search": breadth}})
        except Exception as exc:  # noqa: BLE001 - a server that refuses it still answers, less reliably
            warnings.warn(f"could not set the search breadth of {self.name} at {self.location} ({exc}); dense "
                          "search may miss a nearest chunk now and then", stacklevel=2)

    @property
    def side_dir(self) -> Path:
        """Where this index's side files live: beside an embedded store; for a Chroma server, in the data
        dir, by collection. Sharing it between servers is safe: sentence vectors are keyed by paper
        content, and the BM25 marker holds the content version of the store it was built from."""
        if self.settings.store.kind == "http":
            return self.settings.data_dir / "server-side" / self.name
        return self.settings.store_path.with_name(f"{self.settings.store_path.name}-side") / self.name

    def content_version(self) -> str:
        """Changes whenever chunks or records are written or deleted (by any process): derived
        indexes saved under one version are stale under another."""
        try:
            meta = self._client.get_collection(self.papers.name).metadata or {}
            return f"{meta.get('version', '')}:{self.chunks.count()}:{self.papers.count()}"
        except Exception as exc:  # noqa: BLE001 - chromadb raises transport, HTTP and its own errors alike
            raise StoreError(f"the vector store at {self.location} did not answer ({exc}); "
                             "check that the Chroma server runs") from None

    def _bump_version(self) -> None:
        # Before and after every write: a reader that built from a half-written state sees it stale.
        meta = dict(self._client.get_collection(self.papers.name).metadata or {})
        self.papers.modify(metadata={**meta, "version": uuid.uuid4().hex[:12]})

    def _other_indexes(self) -> list[str]:
        prefix = f"{self.settings.store.collection_prefix}-"
        names = [getattr(c, "name", c) for c in self._client.list_collections()]
        return sorted(n for n in names if n.startswith(prefix) and not n.endswith(("-papers", "-records"))
                      and n != self.name)

    def status(self) -> IndexStatus:
        """Counts and location of this index."""
        return IndexStatus(self.fingerprint, self.location, self.name, self.papers.count(), self.chunks.count(),
                           self._other_indexes(), self.embedder.name)

    def explain(self) -> str:
        """Which collection this store uses and why; other indexes in the same store and what built them."""
        chunking = chunking_fingerprint(self.settings.chunking)
        chunks = self.chunks.count()
        text = (f"using collection {self.name} at {self.location} ({chunks} chunks): its name is the fingerprint of "
                f"embedder {self.embedder.name} ({self.embedder.dim}-d) and chunking {chunking}")
        if chunks and not self.papers.count():
            text += (f"; its paper records are not in {self.papers.name} yet (an index built before records moved "
                     "there): the next ingest writes them and each paper's sentence vectors, and reuses every stored "
                     "chunk vector")
        others = []
        for name in self._other_indexes():
            try:
                other = self._client.get_collection(name)
                meta, count = other.metadata or {}, other.count()
            except Exception:  # noqa: BLE001, S112 - a collection dropped meanwhile is simply not described
                continue
            built = (f"embedder {meta['embedder']} ({meta.get('dim')}-d), chunking {meta.get('chunking')}"
                     if "embedder" in meta else "settings not recorded (built before collections recorded them)")
            others.append(f"{name} ({count} chunks; {built})")
        if others:
            verb = "is built anew" if chunks == 0 else "is kept apart"
            text += (f"; it {verb} because vectors of different embedders or chunkings never mix; "
                     f"other indexes here, left untouched: {'; '.join(others)}")
        return text

    def is_empty(self) -> bool:
        """True when no paper record is stored under this fingerprint (chunks alone, left by an index
        built before records existed, are reused by the next ingest)."""
        return self.papers.count() == 0

    def ingest(
        self, papers: Iterable[Paper], prune: bool = False, progress: Callable[[int, int], None] | None = None,
        total: int | None = None,
    ) -> IngestReport:
        """Add new papers, replace changed ones, and with `prune` remove papers not in `papers`.

        `papers` is consumed once, in batches; a title seen twice keeps its last version.
        `progress(papers done, papers in total)` is called after each written batch; `total`
        defaults to len(papers) when it has one, else 0 (unknown).
        """
        started = time.perf_counter()
        if total is None:
            total = len(papers) if isinstance(papers, list | tuple) else 0
        corpus_ids: set[str] | None = set() if prune else None  # ids only: 2.5M of them take ~200 MB
        counts = {"read": 0, "done": 0, "added": 0, "removed": 0}
        stop = threading.Event()
        errors: list[BaseException] = []
        embedded: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)

        def batches() -> Iterator[list[Paper]]:
            batch: dict[str, Paper] = {}
            for paper in papers:
                counts["read"] += 1
                if corpus_ids is not None:
                    corpus_ids.add(paper.id)
                batch.pop(paper.id, None)
                batch[paper.id] = paper  # a duplicate in one batch: the later version only
                if len(batch) >= self.settings.store.ingest_batch:
                    yield list(batch.values())
                    batch = {}
            if batch:
                yield list(batch.values())

        def chunked() -> Iterator[tuple[list[Paper], list[Chunk]]]:
            for batch in batches():
                yield batch, [c for p in batch for c in chunk_paper(p, self.settings.chunking)]

        def write() -> None:
            # Ids of the last batches written: the embed stage looked a batch up while up to
            # QUEUE_DEPTH + 1 earlier ones were still unwritten, so its papers seen there are redone.
            recent: deque[set[str]] = deque(maxlen=QUEUE_DEPTH + 2)
            try:
                while (item := _take(embedded, stop)) is not None:
                    removed, added = self._write_batch(*item, recent_ids=set().union(*recent))
                    recent.append({p.id for p in item[0]})
                    counts["removed"] += removed
                    counts["added"] += added
                    counts["done"] += len(item[0])
                    if progress:
                        progress(counts["done"], max(total, counts["done"]))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
                errors.append(exc)
                stop.set()

        writer = threading.Thread(target=write, name="ingest-writer", daemon=True)
        writer.start()
        try:
            for batch, chunks in _prefetch(chunked(), stop, errors):
                if not _give(embedded, self._embed_batch(batch, chunks), stop):
                    break
            _give(embedded, None, stop)
        except BaseException:
            stop.set()
            raise
        finally:
            writer.join()  # an interrupted ingest still finishes the batch being written
        if errors:
            raise errors[0]
        if progress and counts["done"] < total:  # titles seen twice were written once: every input is handled
            progress(total, total)

        removed_papers: list[str] = []
        if corpus_ids is not None:
            removed_papers, orphan_chunks = self._prune(corpus_ids)
            counts["removed"] += orphan_chunks
        return IngestReport(
            papers=self.papers.count(),
            chunks_total=self.chunks.count(),
            chunks_added=counts["added"],
            chunks_removed=counts["removed"],
            papers_removed=len(removed_papers),
            seconds=time.perf_counter() - started,
            papers_read=counts["read"],
        )

    def ingest_files(
        self, paths: list[Path], prune: bool = False, skip_bad: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Check the files in one streaming pass (any bad line stops here, before a write, unless
        `skip_bad`: then bad lines are counted and left out), then stream their papers in."""
        scan = scan_corpus(paths, skip_bad=skip_bad)
        report = self.ingest(scan.iter_papers(), prune=prune, progress=progress, total=scan.papers)
        report.bad_lines, report.problems = scan.bad, scan.problems
        return report

    def _embed_batch(self, batch: list[Paper], chunks: list[Chunk]) -> tuple[Any, ...]:
        """Vectors for what this batch needs and the store lacks: new chunks, and the sentences of papers
        that are new, changed, or whose sentence vectors this side folder lacks (a record written from
        another machine into a Chroma server)."""
        present = set(self.chunks.get(ids=[c.id for c in chunks], include=[])["ids"]) if chunks else set()
        new = [c for c in chunks if c.id not in present]
        stored = self.papers.get(ids=[p.id for p in batch], include=["metadatas"])
        hashes = {i: (m or {}).get("content_hash") for i, m in zip(stored["ids"], stored["metadatas"] or [])}
        have_sentences = self.sentences.current(batch)
        changed = [p for p in batch if hashes.get(p.id) != p.content_hash or p.id not in have_sentences]
        # Chunks and sentences in two calls: each is batched by length on its own, so sentences pad little.
        vectors = (self.embedder.embed([embed_text(c.title, c.text) for c in new]) if new
                   else np.zeros((0, self.embedder.dim), dtype=np.float32))
        return batch, chunks, new, vectors, changed, embed_sentences(self.embedder, changed)

    def _write_batch(self, batch: list[Paper], chunks: list[Chunk], new: list[Chunk], new_vectors: Any,
                     changed: list[Paper], sentence_vectors: list[Any], recent_ids: set[str]) -> tuple[int, int]:
        """Write one batch: drop stale chunks, add the new ones, the sentence vectors, then the paper
        records (the batch's commit mark). Returns (chunks removed, chunks added).

        Papers that are new, changed, missing chunks or written by a recent batch (a duplicate
        title: the lookup may predate that write) are checked against the store here; the others
        were complete when looked up and nothing has touched them since."""

        changed_ids = {p.id for p in changed}
        redo = [p for p in batch if p.id in recent_ids and p.id not in changed_ids]
        check = changed_ids | {p.id for p in redo} | {c.paper_id for c in new}
        stored: set[str] = set()
        if check:
            stored = set(self.chunks.get(where={"paper_id": {"$in": sorted(check)}}, include=[])["ids"])
        stale = sorted(stored - {c.id for c in chunks})
        have = stored | {c.id for c in new}
        lost = [c for c in chunks if c.paper_id in check and c.id not in have]
        if lost:  # stored when looked up, dropped since by an earlier batch holding another version
            new = new + lost
            new_vectors = np.concatenate([new_vectors, self.embedder.embed([embed_text(c.title, c.text) for c in lost])])
        if redo:
            changed = changed + redo
            sentence_vectors = sentence_vectors + embed_sentences(self.embedder, redo)
        if not (stale or new or changed):
            return 0, 0
        self._bump_version()
        for start in range(0, len(stale), WRITE_BATCH):
            self.chunks.delete(ids=stale[start : start + WRITE_BATCH])
        if new:
            self.vector_store.add([chunk_node(c, [float(x) for x in v]) for c, v in zip(new, new_vectors)])
        if changed:
            self.sentences.put(changed, sentence_vectors)
            self.papers.upsert(
                ids=[p.id for p in changed],
                embeddings=np.full((len(changed), len(RECORD_VECTOR)), RECORD_VECTOR, dtype=np.float32),
                documents=[p.raw_abstract for p in changed],
                metadatas=[
                    {"title": p.title, "abstract": p.abstract, "source": p.source, "content_hash": p.content_hash}
                    for p in changed
                ],
            )
        self._bump_version()
        return len(stale), len(new)

    def _prune(self, corpus_ids: set[str]) -> tuple[list[str], int]:
        """Delete papers not in `corpus_ids` and every chunk whose paper is not; (papers removed, chunks removed)."""
        removed_papers = [i for i in _iter_ids(self.papers) if i not in corpus_ids]
        orphans = [cid for cid, meta in _iter_records(self.chunks, ["metadatas"])
                   if (meta or {}).get("paper_id") not in corpus_ids]
        if not (orphans or removed_papers):
            return removed_papers, 0
        self._bump_version()
        for start in range(0, len(orphans), WRITE_BATCH):
            self.chunks.delete(ids=orphans[start : start + WRITE_BATCH])
        for start in range(0, len(removed_papers), WRITE_BATCH):
            self.papers.delete(ids=removed_papers[start : start + WRITE_BATCH])
        self.sentences.delete(removed_papers)
        self._bump_version()
        return removed_papers, len(orphans)

    def chunk_pages(self) -> Iterator[list[Chunk]]:
        """Every stored chunk, a page of READ_PAGE at a time, in the store's order (for the BM25 index)."""
        offset = 0
        while True:
            page = self._read(self.chunks.get, include=["documents", "metadatas"], limit=READ_PAGE, offset=offset)
            yield [_to_chunk(cid, doc, meta) for cid, doc, meta in
                   zip(page["ids"], page["documents"] or [], page["metadatas"] or [])]
            offset += len(page["ids"])
            if len(page["ids"]) < READ_PAGE:
                return

    def all_chunks(self) -> list[Chunk]:
        """Every stored chunk."""
        return [c for page in self.chunk_pages() for c in page]

    def chunks_by_id(self, ids: list[str]) -> dict[str, Chunk]:
        """The stored chunks with these ids (missing ones left out)."""
        return self._by_id(self.chunks, ids, _to_chunk)

    def papers_by_id(self, ids: list[str]) -> dict[str, Paper]:
        """The stored papers with these ids (unknown ones left out)."""
        return self._by_id(self.papers, ids, _to_paper)

    def _by_id(self, collection: Any, ids: list[str], convert: Callable[[str, str | None, Any], Any]) -> dict[str, Any]:
        if not ids:
            return {}
        got = self._read(collection.get, ids=ids, include=["documents", "metadatas"])
        return {rid: convert(rid, doc, meta)
                for rid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])}

    def paper_titles(self) -> list[tuple[str, str]]:
        """(id, title) of every stored paper, sorted by title (case-insensitive), then id. Read from the
        side file when it holds a row for every record (ingested through this data dir), else in one
        pass over the records that keeps only those two strings a paper."""
        if self.sentences.count() == self.papers.count():
            found = self.sentences.titles()
        else:
            found = [(pid, str((meta or {}).get("title", ""))) for pid, meta in _iter_records(self.papers, ["metadatas"])]
        return sorted(found, key=lambda pt: (pt[1].lower(), pt[0]))

    def all_papers(self) -> list[Paper]:
        """Every stored paper, sorted by title (case-insensitive), then id."""
        got = _get_all(self.papers, ["documents", "metadatas"])
        papers = [_to_paper(pid, doc, meta) for pid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [])]
        return sorted(papers, key=lambda p: (p.title.lower(), p.id))

    def _read(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except Exception as exc:  # noqa: BLE001 - chromadb raises transport, HTTP and its own errors alike
            raise StoreError(f"the vector store at {self.location} did not answer ({exc.__class__.__name__}: "
                             f"{exc}); check that the Chroma server runs") from None


def _get_all(collection: Any, include: list[str]) -> dict[str, list[Any]]:
    """Every record of a collection (ids and `include` fields), read in pages of READ_PAGE."""
    got: dict[str, list[Any]] = {"ids": [], **{key: [] for key in include}}
    while True:
        page = collection.get(include=include, limit=READ_PAGE, offset=len(got["ids"]))
        for key, values in got.items():
            values.extend(page[key] or [])
        if len(page["ids"]) < READ_PAGE:
            return got


def _iter_records(collection: Any, include: list[str]) -> Iterator[tuple[str, Any]]:
    """(id, first included field) of every record, read in pages of READ_PAGE (ids in a stable order)."""
    offset = 0
    while True:
        page = collection.get(include=include, limit=READ_PAGE, offset=offset)
        values = (page[include[0]] or [None] * len(page["ids"])) if include else [None] * len(page["ids"])
        yield from zip(page["ids"], values)
        offset += len(page["ids"])
        if len(page["ids"]) < READ_PAGE:
            return


def _iter_ids(collection: Any) -> Iterator[str]:
    """Every id of a collection, in pages."""
    for record_id, _ in _iter_records(collection, []):
        yield record_id


def _take(source: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item of a pipeline queue, or None once the pipeline stops."""
    while not stop.is_set():
        try:
            return source.get(timeout=0.2)
        except queue.Empty:
            continue
    return None


def _give(target: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put an item on a pipeline queue, waiting for room; False once the pipeline stops."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


_DONE = object()


def _prefetch(items: Iterator[Any], stop: threading.Event, errors: list[BaseException]) -> Iterator[Any]:
    """Run `items` in a reader thread, QUEUE_DEPTH items ahead of the caller; its errors reach `errors`."""
    ahead: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)

    def read() -> None:
        try:
            for item in items:
                if not _give(ahead, item, stop):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            errors.append(exc)
            stop.set()
            return
        _give(ahead, _DONE, stop)

    threading.Thread(target=read, name="ingest-reader", daemon=True).start()
    while (item := _take(ahead, stop)) is not None and item is not _DONE:
        yield item
    if errors:
        raise errors[0]


def chunk_node(chunk: Chunk, vector: list[float] | None = None) -> Any:
    """A chunk as a LlamaIndex node, for the vector store (with its vector) and for BM25 hits; the
    title in its metadata takes part in the embedded and the BM25 text."""
    from llama_index.core.schema import TextNode

    return TextNode(
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


def _to_chunk(cid: str, doc: str | None, meta: Any) -> Chunk:
    meta = meta or {}
    return Chunk(
        id=cid,
        paper_id=str(meta.get("paper_id", "")),
        title=str(meta.get("title", "")),
        text=doc or "",
        index=int(meta.get("chunk_index", 0) or 0),
        content_hash=str(meta.get("content_hash", "")),
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
