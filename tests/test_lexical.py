"""BM25 with bm25s, saved beside the store: same ranks as LlamaIndex's BM25Retriever gave, loaded instead
of rebuilt while the store is unchanged, rebuilt after any write. Real Chroma (embedded); the
hash embedder stands in for vectors, which BM25 never reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import lexical
from assistant.config import Settings
from assistant.corpus import load_corpus, make_paper
from assistant.lexical import LexicalIndex, open_lexical
from assistant.retrieval import HybridRetriever
from assistant.sentences import SentenceIndex
from assistant.store import Store, chunk_node
from tests.conftest import REPO
from tests.fakes import HashEmbedder

QUESTIONS = [json.loads(line)["question"]
             for line in (REPO / "evals" / "data" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
ODD_QUERIES = ["the of and", "zzqx unknownword", "LoRA", "BLEU on WMT14 En-De", "how many languages?", "7B 13B 70B"]


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    settings = Settings(data_dir=tmp_path_factory.mktemp("lexical") / "data")
    store = Store(settings, HashEmbedder())
    store.ingest(load_corpus(settings.corpus.seed_paths))
    return store


def test_ranks_match_llamaindex_bm25_on_the_seeds(seed_store: Store) -> None:
    from llama_index.retrievers.bm25 import BM25Retriever

    chunks = seed_store.all_chunks()
    k = 20
    oracle = BM25Retriever.from_defaults(nodes=[chunk_node(c) for c in chunks], similarity_top_k=k)
    ours = LexicalIndex.build(seed_store.chunk_pages())
    assert ours is not None and len(ours) == len(chunks)
    compared = 0
    for query in QUESTIONS[:80] + ODD_QUERIES:
        try:
            found = oracle.retrieve(query)
        except (ValueError, IndexError, KeyError):  # a query of only unknown words or stopwords
            found = []
        expected = [(n.node.node_id, round(float(n.score or 0.0), 4)) for n in found if (n.score or 0.0) > 0]
        got = [(h.chunk_id, round(h.score, 4)) for h in ours.search(query, k)]
        assert got == expected, query
        compared += bool(expected)
    assert compared >= 80  # the questions do find chunks: the comparison is not between empty lists


def test_saved_index_is_loaded_while_the_store_is_unchanged(seed_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = seed_store.side_dir / "bm25"
    first = HybridRetriever(seed_store, seed_store.settings.retrieval, SentenceIndex(seed_store.embedder))
    assert (folder / lexical.MARKER).exists()

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the BM25 index was rebuilt for an unchanged store")

    monkeypatch.setattr(LexicalIndex, "build", no_build)
    again = HybridRetriever(seed_store, seed_store.settings.retrieval, SentenceIndex(seed_store.embedder))
    for query in QUESTIONS[:20]:
        assert [n.node.node_id for n in again._sparse(query, None)] == [n.node.node_id for n in first._sparse(query, None)]
    # Loaded memory-mapped, not read into memory.
    assert type(again._bm25.chunk_ids).__name__ == "memmap"  # type: ignore[union-attr]
    assert type(again._bm25._bm25.scores["data"]).__name__ == "memmap"  # type: ignore[union-attr]


def test_any_write_makes_the_next_open_rebuild(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = Store(settings, HashEmbedder())
    store.ingest([make_paper("Graph networks for molecules", "We predict molecule properties with graphs.", "t:0")])
    version = store.content_version()
    retriever = HybridRetriever(store, settings.retrieval, SentenceIndex(store.embedder))
    assert retriever._sparse("quokka", None) == []
    store.ingest([make_paper("Quokka retrieval", "Quokka retrieval finds the quokka papers.", "t:1")])
    assert store.content_version() != version
    assert LexicalIndex.load(store.side_dir / "bm25", store.content_version()) is None  # stale: not loaded
    reopened = HybridRetriever(store, settings.retrieval, SentenceIndex(store.embedder))
    assert [n.node.metadata["title"] for n in reopened._sparse("quokka", None)] == ["Quokka retrieval"]
    assert LexicalIndex.load(store.side_dir / "bm25", store.content_version()) is not None  # saved again
    # A re-ingest of the same corpus writes nothing and keeps the saved index current.
    unchanged = store.content_version()
    store.ingest([make_paper("Quokka retrieval", "Quokka retrieval finds the quokka papers.", "t:1")])
    assert store.content_version() == unchanged


def test_a_marker_from_another_tokenizer_or_format_is_not_trusted(seed_store: Store) -> None:
    folder = seed_store.side_dir / "bm25-check"
    built = open_lexical(folder, "v1", seed_store.chunk_pages())
    assert built is not None and LexicalIndex.load(folder, "v1") is not None
    marker = json.loads((folder / lexical.MARKER).read_text())
    (folder / lexical.MARKER).write_text(json.dumps({**marker, "tokenizer": {**marker["tokenizer"], "stopwords": ""}}))
    assert LexicalIndex.load(folder, "v1") is None
    (folder / lexical.MARKER).write_text(json.dumps({**marker, "format": lexical.FORMAT + 1}))
    assert LexicalIndex.load(folder, "v1") is None
    (folder / lexical.MARKER).write_text(json.dumps(marker))
    (folder / "chunk_ids.npy").unlink()  # a damaged copy is built again, not half-used
    assert LexicalIndex.load(folder, "v1") is None
    assert open_lexical(folder, "v1", seed_store.chunk_pages()) is not None
    assert LexicalIndex.load(folder, "v1") is not None


def test_paper_filter_keeps_only_those_papers(seed_store: Store) -> None:
    index = LexicalIndex.build(seed_store.chunk_pages())
    assert index is not None
    top = index.search(QUESTIONS[0], 20)
    wanted = [top[-1].paper_id]
    assert {h.paper_id for h in index.search(QUESTIONS[0], 20, wanted)} == set(wanted)


def test_chunk_counts_come_from_the_index_and_also_after_a_load(seed_store: Store, tmp_path: Path) -> None:
    index = LexicalIndex.build(seed_store.chunk_pages())
    assert index is not None
    texts = [c.text.lower() + " " + c.title.lower() for page in seed_store.chunk_pages() for c in page]
    assert index.chunks_with("quadrants") == sum("quadrant" in t for t in texts) == 1  # stemmed like the index
    assert index.chunks_with("languages") == sum("language" in t for t in texts) > 100
    assert index.chunks_with("the") == index.chunks_with("zzqx") == 0  # a stopword, an unknown word
    index.save(tmp_path / "bm25", "v1")
    loaded = LexicalIndex.load(tmp_path / "bm25", "v1")  # memory-mapped
    assert loaded is not None and loaded.chunks_with("quadrant") == 1
