"""A paper the question names and the answer leaves out is quoted and cited too."""

from __future__ import annotations

from assistant.api import Assistant
from assistant.config import Settings
from assistant.corpus import make_paper
from assistant.covering import asked_sentence, cover_named, named_papers
from assistant.listing import ListJudge
from assistant.retrieval import SentenceIndex
from assistant.types import Answer, Citation, Passage
from tests.fakes import HashEmbedder, QueueChat

LOLA = make_paper("LOLA: a massively multilingual model",
                  "This paper presents LOLA, a massively multilingual large language model trained on more than "
                  "160 languages using a sparse Mixture-of-Experts Transformer architecture.", "seed:1")
GOLD = make_paper("Goldfish: monolingual models",
                  "We release Goldfish, a suite of small models. "
                  "The Goldfish models are monolingual language models for 350 languages.", "seed:2")
KN = make_paper("One Billion Word Benchmark",
                "We propose a new benchmark corpus for language modeling with almost one billion words. "
                "An unpruned Kneser-Ney 5-gram model achieves perplexity 67.6 on this benchmark.", "seed:7")
FILLER = [make_paper(f"Language models {n}", f"Language models cover many languages in study {n}. "
                     "They are trained on web text.", f"seed:{10 + n}") for n in range(4)]
PAPERS = {p.id: p for p in (LOLA, GOLD, KN, *FILLER)}
PASSAGES = [Passage(paper_id=p.id, title=p.title, text=p.abstract, score=0.1, dense_score=0.6) for p in (LOLA, GOLD, KN)]
QUESTION = "How many languages does LOLA cover, and how many do the Goldfish models cover?"


def judge() -> ListJudge:
    return ListJudge(PAPERS, SentenceIndex(HashEmbedder()))


def rare(word: str) -> bool:
    """At most three abstracts of the collection use the word (the assistant asks its BM25 index)."""
    return 0 < sum(word in f"{p.title} {p.abstract}".lower() for p in PAPERS.values()) <= 3


def answer_citing_lola(abstained: bool = False) -> Answer:
    return Answer(question=QUESTION, answer="LOLA covers more than 160 languages [1].", abstained=abstained,
                  citations=[Citation(key="1", paper_id=LOLA.id, title=LOLA.title, quote="", support=0.9)],
                  passages=PASSAGES)


def test_a_named_paper_the_answer_leaves_out_is_quoted_and_cited() -> None:
    covered = cover_named(answer_citing_lola(), QUESTION, PAPERS, judge(), rare, min_fit=0.2)
    assert [c.title for c in covered.citations] == [LOLA.title, GOLD.title]
    assert covered.answer == ("LOLA covers more than 160 languages [1]. On Goldfish: monolingual models, the abstract "
                              "says: \u201cThe Goldfish models are monolingual language models for 350 languages.\u201d [2]")
    assert covered.citations[1].quote in GOLD.abstract  # the figure's sentence, not the first one


def test_nothing_is_added_to_a_refusal_an_answer_that_cites_all_or_a_poor_fit() -> None:
    lola = answer_citing_lola()
    assert cover_named(answer_citing_lola(abstained=True), QUESTION, PAPERS, judge(), rare, 0.2).answer == lola.answer
    assert cover_named(lola, "How many languages does LOLA cover?", PAPERS, judge(), rare, 0.2) == lola
    assert cover_named(lola, QUESTION, PAPERS, judge(), rare, min_fit=0.99) == lola


def test_papers_are_named_by_a_name_or_a_rare_word_only_one_packed_abstract_uses() -> None:
    packed = [LOLA, GOLD, KN]
    assert [p.id for p in named_papers(QUESTION, packed, rare)] == [LOLA.id, GOLD.id]
    # "perplexity" is rare in this collection and only the benchmark paper uses it
    assert [p.id for p in named_papers("Which perplexity is reported?", packed, rare)] == [KN.id]
    # "languages" is used by more than three abstracts of the collection: it names nothing
    assert named_papers("Which languages are covered?", packed, rare) == []
    # only the asking sentence counts, not a preamble before it
    assert asked_sentence("Notes on LOLA. We met on Monday. What does Goldfish cover?") == "What does Goldfish cover?"


def test_the_assistant_quotes_the_paper_a_one_paper_draft_left_out(seed_assistant: Assistant, seed_settings: Settings) -> None:
    # real Chroma index of the seeds and the real embedder; the drafting model is scripted to answer
    # for the first paper only, as the packaged model does for this question
    question = ("How many arXiv papers did the ChatGPT/GPT-4 research summary analyze, and across how many "
                "languages did the quadrant-based multilingual LLM study evaluate?")
    assistant = Assistant(seed_settings, chat_model=QueueChat(
        ["The ChatGPT/GPT-4 research summary analyzed 194 relevant papers on arXiv [1]."]))
    answer = assistant.ask(question)
    titles = [c.title for c in answer.citations]
    assert titles[0].startswith("Summary of ChatGPT/GPT-4") and titles[1] == "How Multilingual is Multilingual LLM?"
    assert "194" in answer.answer and "101 languages" in answer.answer, answer.answer
