"""Which abstract sentences reach the prompt: figures count, figures inside names do not, and a
figure followed by the unit a quantity question asks about counts most."""

from __future__ import annotations

import pytest

from assistant.config import RetrievalSettings
from assistant.retrieval import figures_bonus
from assistant.text import content_words

TOKENS_QUESTION = "On how many tokens was the Orion-14B foundation model trained?"
W = RetrievalSettings()
NUMBER_BONUS, QUANTITY_BONUS, UNIT_BONUS = W.number_bonus, W.quantity_bonus, W.unit_bonus


@pytest.mark.parametrize(
    ("sentence", "asks_quantity", "expected"),
    [
        ("We train on a corpus of 2.5 trillion tokens.", True, QUANTITY_BONUS + UNIT_BONUS),
        ("We train on 30B tokens.", True, QUANTITY_BONUS + UNIT_BONUS),
        ("The models have 14 billion parameters.", True, QUANTITY_BONUS),
        ("It reduces the error by 3.1% to 12.7%.", True, QUANTITY_BONUS),
        ("It reduces the error by 3.1% to 12.7%.", False, NUMBER_BONUS),
        ("We release Orion-14B and GPT-4 baselines.", True, 0.0),  # digits inside names are not figures
        ("No figures here at all.", True, 0.0),
    ],
)
def test_figures_bonus(sentence: str, asks_quantity: bool, expected: float) -> None:
    assert figures_bonus(sentence, content_words(TOKENS_QUESTION), asks_quantity, W) == pytest.approx(expected)


def test_the_asked_figure_reaches_a_short_passage(seed_assistant) -> None:  # type: ignore[no-untyped-def]
    """With the real embedder, the sentence that holds the answer is chosen within a 60-token budget,
    ahead of sentences that only repeat the model's name."""
    paper = next(p for p in seed_assistant.papers.values() if p.title.startswith("Orion-14B"))
    vector = seed_assistant.embedder.embed([TOKENS_QUESTION])[0]
    passage = seed_assistant.retriever.selector.select(paper, TOKENS_QUESTION, vector, 60)
    assert "2.5 trillion tokens" in passage
