"""The Chroma store: idempotent and incremental ingest, fingerprints, no partial index on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import ChunkSettings, Settings
from assistant.corpus import make_paper
from assistant.errors import CorpusError
from assistant.store import Store, index_fingerprint
from tests.fakes import HashEmbedder

ABSTRACT = "We study {topic}. Our method improves {topic} by 12% on three benchmarks. Code is released."


def papers(*topics: str):  # type: ignore[no-untyped-def]
    return [make_paper(f"A paper on {t}", ABSTRACT.format(topic=t), f"t:{i}") for i, t in enumerate(topics)]


def test_reingest_is_a_no_op_and_changes_replace_chunks(settings: Settings) -> None:
    store = Store(settings, HashEmbedder())
    first = store.ingest(papers("graphs", "speech"))
    assert (first.papers, first.chunks_added) == (2, 2)
    again = store.ingest(papers("graphs", "speech"))
    assert (again.chunks_added, again.chunks_removed, again.chunks_total) == (0, 0, 2)
    changed = papers("graphs", "speech")
    changed[0] = make_paper(changed[0].title, "A new abstract about graphs and nothing else.", "t:0")
    report = store.ingest(changed)
    assert (report.chunks_added, report.chunks_removed, report.chunks_total) == (1, 1, 2)
    assert {c.text for c in store.all_chunks()} >= {"A new abstract about graphs and nothing else."}


def test_prune_removes_papers_not_in_the_sources(settings: Settings) -> None:
    store = Store(settings, HashEmbedder())
    store.ingest(papers("graphs", "speech", "vision"))
    kept = store.ingest(papers("speech"))
    assert kept.papers == 3  # without --prune, other sources' papers stay
    pruned = store.ingest(papers("speech"), prune=True)
    assert (pruned.papers, pruned.chunks_total, pruned.papers_removed) == (1, 1, 2)
    assert [p.title for p in store.all_papers()] == ["A paper on speech"]


def test_chunking_change_builds_a_new_collection(settings: Settings) -> None:
    a = index_fingerprint("e", settings)
    b = index_fingerprint("e", settings.model_copy(update={"chunking": ChunkSettings(max_tokens=99)}))
    assert a != b and index_fingerprint("other", settings) != a
    store = Store(settings, HashEmbedder())
    store.ingest(papers("graphs"))
    other = Store(settings.model_copy(update={"chunking": ChunkSettings(max_tokens=99)}), HashEmbedder())
    assert other.is_empty() and other.name != store.name


def test_a_bad_file_among_good_ones_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    from assistant.api import Assistant
    from tests.fakes import QueueChat

    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"title": "Fine", "abstract": "A fine abstract."}) + "\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    assistant = Assistant(settings, chat_model=QueueChat([]))
    with pytest.raises(CorpusError, match="bad.jsonl:1"):
        assistant.ingest([good, bad])
    assert assistant.store.is_empty() and assistant.store.papers.count() == 0


def test_the_dense_search_breadth_is_set_at_open_and_follows_the_setting(settings: Settings) -> None:
    store = Store(settings, HashEmbedder())
    assert store.chunks.configuration["hnsw"]["ef_search"] == settings.store.search_breadth == 500
    narrower = settings.model_copy(update={"store": settings.store.model_copy(update={"search_breadth": 200})})
    assert Store(narrower, HashEmbedder()).chunks.configuration["hnsw"]["ef_search"] == 200  # an existing collection
