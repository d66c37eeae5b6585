"""Chunking: token budgets, sentence boundaries, overlap, metadata."""

from __future__ import annotations

import itertools

from assistant.chunking import chunk_paper, count_tokens, split_sentences
from assistant.config import ChunkSettings
from assistant.corpus import make_paper, parse_listing
from tests.conftest import SEED_FILE


def test_split_sentences_keeps_abbreviations_and_decimals() -> None:
    text = "We use e.g. BERT. It reaches 91.9% accuracy. Smith et al. report more! Is it? Yes."
    assert split_sentences(text) == [
        "We use e.g. BERT.",
        "It reaches 91.9% accuracy.",
        "Smith et al. report more!",
        "Is it?",
        "Yes.",
    ]


def test_short_abstract_is_one_chunk_with_metadata() -> None:
    paper = make_paper("A Title", "One sentence. Two sentences.", "f:1")
    (chunk,) = chunk_paper(paper, ChunkSettings())
    assert chunk.paper_id == paper.id and chunk.title == "A Title" and chunk.text == paper.abstract
    assert chunk.id.startswith(paper.id)


def test_long_abstract_splits_within_budget_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail here." for i in range(30)]
    paper = make_paper("Long", " ".join(sentences), "f:1")
    settings = ChunkSettings(max_tokens=60, overlap_sentences=1)
    chunks = chunk_paper(paper, settings)
    assert len(chunks) > 3
    assert all(count_tokens(c.text) <= 60 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert split_sentences(a.text)[-1] == split_sentences(b.text)[0]
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_sentence_over_budget_is_cut_on_tokens() -> None:
    paper = make_paper("Run-on", " ".join(["word"] * 500) + ".", "f:1")
    chunks = chunk_paper(paper, ChunkSettings(max_tokens=64, overlap_sentences=0))
    assert len(chunks) >= 7 and all(count_tokens(c.text) <= 64 for c in chunks)


def test_chunk_ids_change_with_content_only() -> None:
    a = chunk_paper(make_paper("T", "Alpha. Beta.", "f:1"), ChunkSettings())
    b = chunk_paper(make_paper("T", "Alpha. Beta.", "g:9"), ChunkSettings())
    c = chunk_paper(make_paper("T", "Alpha. Gamma.", "f:1"), ChunkSettings())
    assert [x.id for x in a] == [x.id for x in b] and a[0].id != c[0].id


def test_seed_corpus_mostly_fits_one_or_two_chunks() -> None:
    settings = ChunkSettings()
    counts = [len(chunk_paper(p, settings)) for p in parse_listing(SEED_FILE)]
    assert max(counts) <= 4 and sum(c <= 2 for c in counts) / len(counts) > 0.9
