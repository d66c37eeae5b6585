"""The orchestrator with fake parts: abstention on weak evidence, streaming, timings, bad input."""

from __future__ import annotations

import pytest

from assistant.answering import REFUSAL
from assistant.api import Assistant
from assistant.config import Settings
from assistant.corpus import make_paper
from assistant.errors import InputError
from tests.fakes import HashEmbedder, QueueChat

PAPERS = [
    make_paper("Graph networks for molecules", "We predict molecule properties with graph networks, reaching 0.91 AUC.", "t:1"),
    make_paper("Speech pre-training", "We pre-train speech encoders and cut word error rate by 12.5% on LibriSpeech.", "t:2"),
]


@pytest.fixture
def make(settings: Settings):  # type: ignore[no-untyped-def]
    def build(replies: list[str]) -> tuple[Assistant, QueueChat]:
        chat = QueueChat(replies)
        tuned = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"min_dense_score": 0.2})})
        assistant = Assistant(tuned, chat_model=chat, embedder=HashEmbedder())
        assistant.store.ingest(PAPERS)
        assistant._reload()
        return assistant, chat

    return build


def test_answer_cites_titles_and_reports_timings(make) -> None:  # type: ignore[no-untyped-def]
    assistant, chat = make(["Speech encoder pre-training cuts word error rate by 12.5% on LibriSpeech [1]."])
    answer = assistant.ask("How much does speech pre-training cut word error rate?")
    assert not answer.abstained and [c.title for c in answer.citations] == ["Speech pre-training"]
    assert {"retrieve", "first_token", "generate", "ground", "total"} <= set(answer.timings_ms)
    assert answer.index_fingerprint == assistant.fingerprint and answer.model == "queue-chat"
    assert answer.passages[0].title == "Speech pre-training"
    assert "Question: How much does speech pre-training cut word error rate?" in chat.seen[0][1]["content"]


def test_weak_evidence_abstains_without_calling_the_model(make) -> None:  # type: ignore[no-untyped-def]
    assistant, chat = make([])
    answer = assistant.ask("best lasagne recipe with basil")
    assert answer.abstained and answer.answer == REFUSAL and chat.seen == []
    assert set(answer.timings_ms) == {"retrieve", "total"}  # an abstention is timed like an answer


def test_stream_yields_sources_then_tokens_then_the_answer(make) -> None:  # type: ignore[no-untyped-def]
    assistant, chat = make(["Graph networks predict molecule properties with 0.91 AUC [1]."] * 2)
    stream = assistant.ask_stream("What AUC do graph networks reach on molecule properties?")
    first = next(stream)
    assert first.kind == "sources" and first.sources is not None and chat.seen == []  # before the model starts
    events = [first, *stream]
    kinds = [e.kind for e in events]
    assert kinds == ["sources"] + ["token"] * (len(events) - 2) + ["answer"]
    assert "".join(e.text for e in events[1:-1]).startswith("Graph networks")
    answer = events[-1].answer
    assert answer is not None and first.sources.passages == answer.passages  # what the answer will hold, early
    assert {c.paper_id for c in answer.citations} <= {p.paper_id for p in first.sources.passages}
    assert assistant.ask("What AUC do graph networks reach on molecule properties?").passages  # ask ignores it


def test_a_question_refused_at_retrieval_sends_no_sources(make) -> None:  # type: ignore[no-untyped-def]
    assistant, _ = make([])
    events = list(assistant.ask_stream("best lasagne recipe with basil"))
    assert [e.kind for e in events] == ["answer"] and events[0].answer is not None and events[0].answer.abstained


def test_paper_filter_restricts_retrieval_and_unknown_ids_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    assistant, _ = make([])
    speech = PAPERS[1].id
    assert [p.paper_id for p in assistant.retrieve("graph networks molecules", paper_ids=[speech])] == [speech]
    with pytest.raises(InputError, match="unknown paper id"):
        assistant.retrieve("graphs", paper_ids=["nope"])


def test_packed_prompt_never_exceeds_the_window_minus_the_answer_budget(make) -> None:  # type: ignore[no-untyped-def]
    from assistant.answering import build_messages, pack
    from assistant.text import count_tokens

    assistant, _ = make([])
    huge = assistant.settings.model_copy(update={
        "retrieval": assistant.settings.retrieval.model_copy(update={"context_tokens": 100_000, "passage_tokens": 5000}),
        "llm": assistant.settings.llm.model_copy(update={"n_ctx": 600, "max_tokens": 200}),
    })
    assistant.settings = huge
    question = "How much does speech pre-training cut word error rate?"
    packed = pack(assistant.retriever.passages(question, top_k=10), assistant.context_budget(question))
    prompt = sum(count_tokens(m["content"]) for m in build_messages(assistant.prompts, question, packed))
    assert prompt + 64 <= huge.llm.n_ctx - huge.llm.max_tokens
