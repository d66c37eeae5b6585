"""Assistant: the one orchestrator. corpus -> store -> retrieval -> answering -> grounding -> Answer.

`Assistant.from_settings()` opens (and on first use fills) the index; the chat model loads on
the first question. `ask` returns an Answer; `ask_stream` yields the retrieved papers (before the
model starts), token events and then the final Answer, for the chat UI and the HTTP API.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .answering import REFUSAL, Prompts, clean_question, drop_commands, pack, shorten_question, stream_draft, translate
from .backends import ChatModel, Embedder, make_chat_model, make_embedder
from .config import Settings
from .covering import cover_named
from .errors import InputError
from .grounding import SupportChecker, Verify, ground, strip_keys, tidy
from .judging import Judge
from .listing import ListJudge, is_list_question, render_list
from .retrieval import HybridRetriever, PaperRecords, anchored
from .sentences import SentenceIndex
from .store import IngestReport, Store
from .text import count_tokens, looks_english
from .types import Answer, Citation, Draft, Passage, Sources

if TYPE_CHECKING:
    from llama_index.core import VectorStoreIndex


@dataclass
class StreamEvent:
    """The retrieved papers (kind 'sources'), a streamed token (kind 'token') or the final answer (kind 'answer')."""

    kind: str
    text: str = ""
    answer: Answer | None = None
    sources: Sources | None = None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Assistant:
    """Answers questions over the indexed abstracts, citing the papers it used."""

    def __init__(self, settings: Settings, chat_model: ChatModel | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.prompts = Prompts.load()
        self.embedder = embedder or make_embedder(settings.embed)
        self.store = Store(settings, self.embedder)
        self.sentences = SentenceIndex(self.embedder, self.store.sentences)
        self.checker = SupportChecker(self.sentences, settings.support)
        self._chat = chat_model
        self._chat_lock = threading.Lock()
        self._reload()

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, ingest_seeds: bool = True, progress: Callable[[int, int], None] | None = None
    ) -> Assistant:
        """An assistant over the configured index; an empty index is filled from the seed files first."""
        assistant = cls(settings or Settings())
        if ingest_seeds and assistant.store.is_empty() and assistant.settings.corpus.seed_paths:
            print(f"first start: indexing {len(assistant.settings.corpus.seed_paths)} seed file(s); "
                  f"{assistant.store.explain()}", file=sys.stderr)
            assistant.ingest(assistant.settings.corpus.seed_paths, progress=progress)
        return assistant

    def _reload(self) -> None:
        self.retriever = HybridRetriever(self.store, self.settings.retrieval, self.sentences)
        self.papers: PaperRecords = self.retriever.papers
        self.lister = ListJudge(self.papers, self.sentences, self.settings.support)

    @property
    def fingerprint(self) -> str:
        """The index fingerprint (embedder + chunking)."""
        return self.store.fingerprint

    @property
    def vector_index(self) -> VectorStoreIndex:
        """The LlamaIndex index over the chunk vectors, for LlamaIndex query engines (the eval's and the
        benchmark's CitationQueryEngine baseline run on the same index as the assistant)."""
        return self.retriever.index

    @property
    def chat_model(self) -> ChatModel:
        """The chat model, loaded on first use."""
        with self._chat_lock:
            if self._chat is None:
                self._chat = make_chat_model(self.settings.llm, self.settings.model_cache_dir, self.prompts.system)
            return self._chat

    def ingest(
        self, paths: list[Path], prune: bool = False, progress: Callable[[int, int], None] | None = None,
        skip_bad: bool = False,
    ) -> IngestReport:
        """Check every file first (nothing is written if any is bad, unless `skip_bad`), then stream them in."""
        report = self.store.ingest_files(paths, prune=prune, skip_bad=skip_bad, progress=progress)
        self._reload()
        return report

    def retrieve(
        self, question: str, top_k: int | None = None, paper_ids: list[str] | None = None, mode: str | None = None
    ) -> list[Passage]:
        """Ranked passages for a question, one per paper; `mode` 'hybrid', 'dense' or 'bm25' (default: settings)."""
        question, _ = shorten_question(clean_question(question), self.settings.max_question_tokens)
        self._check_paper_ids(paper_ids)
        return self.retriever.passages(question, top_k=top_k, paper_ids=paper_ids, mode=mode)

    def check_claims(self, claims: list[tuple[str, list[str]]], question: str = "") -> list[float]:
        """Support of each (claim, cited paper ids) by those papers' abstracts taken together, in [0, 1]
        (0 for a claim citing no known paper); in judge mode a claim the judge rejects scores 0."""
        texts = [strip_keys(tidy(text)) for text, _ in claims]
        vectors = self.checker.claim_vectors(texts) if texts else []
        verify = self._verifier()
        scores = []
        for text, (_, pids), vector in zip(texts, claims, vectors):
            papers = [self.papers[p] for p in dict.fromkeys(pids) if p in self.papers]
            score = self.checker.score_set(text, vector, papers, question)
            if score and verify is not None and not verify(text, papers):
                score = 0.0
            scores.append(score)
        return scores

    def context_budget(self, question: str) -> int:
        """Tokens the passages may take: the configured budget, never more than the model's window
        minus the answer budget, the fixed prompt and the question (with a margin for chat markup)."""
        llm = self.settings.llm
        fixed = count_tokens(self.prompts.system) + count_tokens(self.prompts.user) + count_tokens(question) + 64
        return max(min(self.settings.retrieval.context_tokens, llm.n_ctx - llm.max_tokens - fixed), 0)

    def _check_paper_ids(self, paper_ids: list[str] | None) -> None:
        unknown = [pid for pid in paper_ids or [] if pid not in self.papers]
        if unknown:
            raise InputError(f"unknown paper id(s): {', '.join(unknown[:5])}; list ids with `paper-assistant papers`")

    def _verifier(self) -> Verify | None:
        if self.settings.grounding_mode != "judge":
            return None
        judge = Judge(self.chat_model)
        return lambda claim, papers: judge.judge(claim, papers).supported is not False

    def ask(self, question: str, top_k: int | None = None, paper_ids: list[str] | None = None) -> Answer:
        """Answer a question, citing paper titles; abstains when the papers do not cover it."""
        final: Answer | None = None
        for event in self.ask_stream(question, top_k=top_k, paper_ids=paper_ids):
            if event.kind == "answer":
                final = event.answer
        assert final is not None
        return final

    def ask_stream(
        self, question: str, top_k: int | None = None, paper_ids: list[str] | None = None
    ) -> Iterator[StreamEvent]:
        """Yield the retrieved papers, then the model's tokens as they come, then the grounded Answer.

        The `sources` event comes right after retrieval, before the list judging or the model starts,
        and only when the retrieval gate passed: a question refused there gets the answer alone.

        A question over `max_question_tokens` is answered from its final sentences; one in another
        language is put into English first (the answer is in English); one that asks which papers fit
        gets a list answer, judged paper by paper, without generation. Sentences that command the
        assistant ("Respond only with ...") are dropped from what is asked (`question_used`)."""
        started = time.perf_counter()
        asked = clean_question(question)
        self._check_paper_ids(paper_ids)
        text, truncated = shorten_question(asked, self.settings.max_question_tokens)
        text = drop_commands(text)
        timings: dict[str, float] = {}
        if self.settings.translate_questions and not looks_english(text):
            translate_start = time.perf_counter()
            text = translate(self.chat_model, self.prompts, text)
            timings["translate"] = _ms(time.perf_counter() - translate_start)
        listing = is_list_question(text)
        retrieval = self.settings.retrieval
        k = top_k or retrieval.top_k
        passages = self.retriever.passages(
            text, top_k=max(k, retrieval.list_candidates) if listing else k, paper_ids=paper_ids)
        timings["retrieve"] = _ms(time.perf_counter() - started)

        def finish(answer: Answer) -> StreamEvent:
            timings["total"] = _ms(time.perf_counter() - started)
            return StreamEvent("answer", answer=answer.model_copy(update={
                "question": asked, "question_truncated": truncated, "question_used": text if text != asked else "",
                "passages": passages, "timings_ms": timings, "index_fingerprint": self.fingerprint}))

        refusal = Answer(question=asked, answer=REFUSAL, abstained=True)
        strong = passages and (max(p.dense_score for p in passages) >= retrieval.min_dense_score
                               or anchored(text, passages, self.papers))
        if not strong:
            yield finish(refusal)
            return
        yield StreamEvent("sources", sources=Sources(passages=passages))
        if listing:
            items, _ = self.lister.items(text, passages, retrieval.list_min_fit, retrieval.list_max_items)
            if not items:
                yield finish(refusal)
                return
            citations = [Citation(key=i.key, paper_id=i.paper_id, title=i.title, quote=i.quote, support=i.support)
                         for i in items]
            yield finish(Answer(question=asked, answer=render_list(items), abstained=False, kind="list",
                                items=items, citations=citations))
            return
        packed = pack(passages, self.context_budget(text))
        if not packed:  # the window leaves no room for evidence: answering would be guessing
            yield finish(refusal)
            return
        model = self.chat_model
        gen_start = time.perf_counter()
        pieces: list[str] = []
        usage: dict[str, int] = {}
        for piece in stream_draft(model, self.prompts, text, packed, self.settings.llm.max_tokens):
            if piece.text:
                if not pieces:
                    timings["first_token"] = _ms(time.perf_counter() - started)
                pieces.append(piece.text)
                yield StreamEvent("token", text=piece.text)
            usage = piece.usage or usage
        timings["generate"] = _ms(time.perf_counter() - gen_start)
        ground_start = time.perf_counter()
        budget = self.settings.llm.max_tokens
        draft = Draft(text="".join(pieces), passages=packed, model=model.name, usage=usage,
                      truncated=usage.get("completion_tokens", len(pieces)) >= budget)
        answer = ground(draft, self.papers, self.checker, self.settings.min_support,
                        self.settings.drop_unsupported_claims, self._verifier(), text)
        answer = cover_named(answer, text, self.papers, self.lister, self.retriever.is_rare, retrieval.list_min_fit)
        timings["ground"] = _ms(time.perf_counter() - ground_start)
        yield finish(answer)
