"""List questions: which questions ask for papers, what they ask for, and where the list is cut."""

from __future__ import annotations

import pytest

from assistant.api import Assistant
from assistant.corpus import make_paper
from assistant.listing import ListJudge, criterion, cut_at_largest_drop, is_list_question, render_list
from assistant.retrieval import SentenceIndex
from assistant.types import Passage
from tests.fakes import HashEmbedder


@pytest.mark.parametrize(
    ("question", "listing"),
    [
        ("Which papers are surveys of small language models?", True),
        ("Which surveys focus on LLM inference acceleration?", True),
        ("What work in the collection studies code-switching?", True),
        ("List the papers that report results on the One Billion Word Benchmark.", True),
        ("Which non-diffusion models in the collection can generate text in any order?", True),
        ("Which abstracts mention PRISMA?", True),
        ("Which paper introduces PARSeq?", False),
        ("Which sampling methods is locally typical sampling compared against?", False),
        ("What accuracy does PARSeq reach on real data?", False),
        ("How many languages do LOLA and Goldfish each cover?", False),
    ],
)
def test_list_questions_are_recognised(question: str, listing: bool) -> None:
    assert is_list_question(question) is listing


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("Which papers are surveys of small language models?", "surveys of small language models"),
        ("Which papers in the collection propose methods for quantizing LLMs?", "propose methods for quantizing LLMs"),
        ("What work in the collection studies code-switching?", "studies code-switching"),
        ("Which surveys focus on LLM inference acceleration?", "surveys focus on LLM inference acceleration"),
    ],
)
def test_the_criterion_is_the_question_without_its_lead(question: str, wanted: str) -> None:
    assert criterion(question) == wanted


@pytest.mark.parametrize(
    ("fits", "limit", "keep"),
    [
        ([0.9, 0.88, 0.4, 0.35], 4, 2),
        ([0.9, 0.85, 0.8, 0.3], 4, 3),
        ([0.9, 0.5, 0.45], 4, 2),  # at least two when two are there
        ([0.9], 4, 1),
        ([], 4, 0),
        ([0.9, 0.89, 0.88, 0.87, 0.86, 0.2], 4, 2),  # no drop within the limit: the largest small one
        ([0.9, 0.8, 0.7], 1, 1),
    ],
)
def test_the_list_is_cut_at_the_largest_drop(fits: list[float], limit: int, keep: int) -> None:
    assert cut_at_largest_drop(fits, limit) == keep


def test_candidates_are_judged_and_rendered_one_per_line() -> None:
    papers = [
        make_paper("A survey of small language models", "We survey small language models and their training. "
                   "Small language models run on phones.", "t:1"),
        make_paper("Small language models: a review", "This review covers small language models. "
                   "We survey architectures of small language models.", "t:2"),
        make_paper("Protein folding with diffusion", "We fold proteins with a diffusion model. "
                   "It beats baselines on CASP.", "t:3"),
    ]
    by_id = {p.id: p for p in papers}
    judge = ListJudge(by_id, SentenceIndex(HashEmbedder()))
    candidates = [Passage(paper_id=p.id, title=p.title, text=p.abstract, score=0.1) for p in reversed(papers)]
    items, scored = judge.items("Which papers are surveys of small language models?", candidates, 0.35, 4)
    assert {i.title for i in items} == {papers[0].title, papers[1].title}
    assert [i.key for i in items] == ["1", "2"] and len(scored) == 3
    assert all(i.quote in by_id[i.paper_id].abstract for i in items)
    text = render_list(items)
    assert text.splitlines()[0].startswith(f"[1] {items[0].title}: \u201c") and len(text.splitlines()) == 2


def test_the_quote_uses_the_words_of_what_was_asked(seed_assistant: Assistant) -> None:
    answer = seed_assistant.ask("Which papers report results on the One Billion Word Benchmark?")
    (benchmark,) = [i for i in answer.items if i.title.startswith("One Billion Word Benchmark")]
    assert "billion word" in benchmark.quote.lower(), benchmark.quote  # not "The benchmark is available as ..."
