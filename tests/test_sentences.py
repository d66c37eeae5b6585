"""Sentence vectors: embedded at ingest and stored in the side file, so the first question that meets a
paper embeds only itself (and the answer's claims), never the paper's sentences. Real Chroma; the hash
embedder is wrapped to record every text it embeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant
from assistant.config import Settings
from assistant.corpus import make_paper
from assistant.sentences import SentenceFile, SentenceIndex, sentence_texts
from assistant.types import Paper
from tests.fakes import HashEmbedder, QueueChat

TOPICS = ("graph networks for molecules", "speech recognition with sparse experts", "image segmentation of cells")


def corpus() -> list[Paper]:
    return [make_paper(f"A study of {t}", f"We study {t}. Our method improves {t} by {10 + i}% on three benchmarks. "
                       "Code is released.", f"t:{i}") for i, t in enumerate(TOPICS)]


class RecordingEmbedder(HashEmbedder):
    """The hash embedder, keeping every text it was asked to embed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().embed(texts)


def all_sentence_texts(papers: list[Paper]) -> set[str]:
    return {text for p in papers for text in sentence_texts(p)[1]}


def test_ingest_stores_each_papers_sentence_vectors(settings: Settings) -> None:
    assistant = Assistant(settings, chat_model=QueueChat([]), embedder=HashEmbedder())
    papers = corpus()
    assistant.store.ingest(papers)
    stored = assistant.store.sentences
    for paper in papers:
        vectors = stored.get(paper)
        assert vectors is not None and vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, HashEmbedder().embed(sentence_texts(paper)[1]), atol=1e-3)
    changed = make_paper(papers[0].title, "A different abstract now.", "t:0")
    assert stored.get(changed) is None  # keyed by content: a changed paper's old vectors are not used
    assistant.store.ingest([changed])
    assert stored.get(changed) is not None


def test_first_question_about_an_unseen_paper_embeds_no_sentence(settings: Settings) -> None:
    papers = corpus()
    Assistant(settings, chat_model=QueueChat([]), embedder=HashEmbedder()).store.ingest(papers)
    recorder = RecordingEmbedder()
    # A new process: nothing cached, every paper unseen.
    assistant = Assistant(settings, chat_model=QueueChat(["Sparse experts improve speech recognition by 11% [1]."]),
                          embedder=recorder)
    question = "By how much do sparse experts improve speech recognition?"
    passages = assistant.retrieve(question)
    assert passages and passages[0].title == "A study of speech recognition with sparse experts"
    assert recorder.seen == [question]  # the question, and nothing else
    answer = assistant.ask(question)
    assert not answer.abstained and answer.citations
    assert not set(recorder.seen) & all_sentence_texts(papers)


def test_without_stored_vectors_a_paper_is_embedded_on_first_use(settings: Settings, tmp_path: Path) -> None:
    # The fallback (a side file deleted, or written on another machine): the paper is embedded once, then kept.
    recorder = RecordingEmbedder()
    index = SentenceIndex(recorder, SentenceFile(tmp_path / "empty.sqlite"))
    paper = corpus()[0]
    index.evidence(paper)
    assert recorder.seen == sentence_texts(paper)[1]
    index.evidence(paper)
    assert recorder.seen == sentence_texts(paper)[1]


@pytest.mark.e2e
def test_stored_vectors_match_the_packaged_embedder(seed_assistant: Assistant) -> None:
    # Batched at ingest, one paper at a time here: int8 dynamic quantisation scales each batch on its own,
    # and float16 storage rounds; neither may move a cosine by more than a hair.
    for paper in list(seed_assistant.papers.values())[:5]:
        stored = seed_assistant.store.sentences.get(paper)
        assert stored is not None
        fresh = seed_assistant.embedder.embed(sentence_texts(paper)[1])
        assert float(np.abs((stored * fresh).sum(axis=1) - 1.0).max()) < 0.01
