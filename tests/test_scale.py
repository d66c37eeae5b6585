"""Scale and speed: the assistant against real servers, chosen by configuration only, and prompt budgets.

A real `chroma run` server stands in for the embedded store (ingest, re-ingest, retrieval, an
answer from the local model), and llama-cpp-python's OpenAI-compatible server stands in for the
in-process model (answers, streaming, usage, a dead URL). Every server is started on a free
loopback port by tests/servers.py and stopped by its fixture. A store past SQLite's variable limit
(~33k records) must still read, re-ingest and prune. The budget tests use the fakes: the prompt
the model receives must fit its window minus the answer budget, counted with tiktoken.
No test asserts on wall-clock time; benchmarks/ measures speed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant
from assistant.answering import REFUSAL
from assistant.backends import OpenAIChat, make_chat_model
from assistant.chunking import chunk_corpus
from assistant.config import Settings
from assistant.corpus import load_corpus, make_paper
from assistant.errors import BackendUnavailable, StoreError
from assistant.store import Store
from assistant.text import count_tokens
from assistant.types import Paper
from harness.common import TimedEmbedder
from harness.servers import MODEL_ALIAS, Server, free_port, running, start_chroma, start_llama_server
from tests.fakes import HashEmbedder, QueueChat

KN_QUESTION = "What perplexity does the Kneser-Ney baseline reach on the billion-word benchmark?"
KN_TITLE = "One Billion Word Benchmark for Measuring Progress in Statistical Language Modeling"
RETRIEVAL_QUESTIONS = (
    KN_QUESTION,
    "How many distinct text domains does the Paloma benchmark use to measure language model fit?",
    "What accuracy does PARSeq reach when trained on real data?",
)
# Tokens the Qwen chat template wraps around each message ("<|im_start|>role\n" ... "<|im_end|>\n"),
# plus the assistant header that opens the answer.
TEMPLATE_TOKENS_PER_MESSAGE = 5
TEMPLATE_TOKENS_REPLY = 3


def http_store_settings(server: Server, data_dir: Path, **extra: object) -> Settings:
    """Settings whose store is the Chroma server."""
    return Settings(data_dir=data_dir, store={"kind": "http", "host": "127.0.0.1", "port": server.port}, **extra)


def tiny_corpus() -> list[Paper]:
    return [
        make_paper(f"A paper on {topic}", f"We study {topic}. Our method improves {topic} by 12% on three benchmarks.",
                   f"t:{i}")
        for i, topic in enumerate(("graphs", "speech", "vision"))
    ]


# --------------------------------------------------------------------------- Chroma server


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `chroma run` on a free port, for this module."""
    root = tmp_path_factory.mktemp("chroma-server")
    with running(start_chroma(root / "db", root / "logs")) as server:
        yield server


@pytest.fixture(scope="module")
def http_assistant(chroma_server: Server, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """The real assistant (packaged embedder and local model) over the Chroma server, seeds ingested."""
    data_dir = tmp_path_factory.mktemp("http-assistant")
    return Assistant.from_settings(http_store_settings(chroma_server, data_dir, llm={"model_path": model_path}))


@pytest.mark.e2e
def test_store_kind_http_is_chosen_by_environment(chroma_server: Server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPER_ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PAPER_ASSISTANT_STORE__KIND", "http")
    monkeypatch.setenv("PAPER_ASSISTANT_STORE__HOST", "127.0.0.1")
    monkeypatch.setenv("PAPER_ASSISTANT_STORE__PORT", str(chroma_server.port))
    monkeypatch.setenv("PAPER_ASSISTANT_STORE__COLLECTION_PREFIX", "by-env")
    store = Store(Settings(), HashEmbedder())
    report = store.ingest(tiny_corpus())
    assert store.location == chroma_server.url
    assert (report.papers, report.chunks_total, report.chunks_added) == (3, 3, 3)
    assert store.chunks.configuration["hnsw"]["ef_search"] == 500  # the server's collection searches widely too
    assert not (tmp_path / "data" / "chroma").exists()  # nothing went to an embedded store


@pytest.mark.e2e
@pytest.mark.slow
def test_seed_ingest_over_http_has_the_right_ids_and_counts(http_assistant: Assistant, chroma_server: Server) -> None:
    papers = load_corpus(http_assistant.settings.corpus.seed_paths)
    chunks = chunk_corpus(papers, http_assistant.settings.chunking)
    status = http_assistant.store.status()
    assert status.location == chroma_server.url
    assert (status.papers, status.chunks) == (len(papers), len(chunks))
    assert {c.id for c in http_assistant.store.all_chunks()} == {c.id for c in chunks}
    assert {p.id for p in http_assistant.store.all_papers()} == {p.id for p in papers}
    assert set(http_assistant.papers) == {p.id for p in papers}
    # Side files of a server's index live in the data dir: BM25 (saved at first open) and sentence vectors.
    side = http_assistant.settings.data_dir / "server-side" / http_assistant.store.name
    assert http_assistant.store.side_dir == side and (side / "bm25" / "marker.json").exists()
    assert http_assistant.store.sentences.current(papers) == {p.id for p in papers}


@pytest.mark.e2e
def test_bm25_over_http_is_loaded_until_the_server_changes(chroma_server: Server, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.lexical import LexicalIndex
    from assistant.retrieval import HybridRetriever
    from assistant.sentences import SentenceIndex

    where = {"kind": "http", "host": "127.0.0.1", "port": chroma_server.port, "collection_prefix": "bm25-http"}
    settings = Settings(data_dir=tmp_path / "data", store=where)
    store = Store(settings, HashEmbedder())
    store.ingest(tiny_corpus())
    HybridRetriever(store, settings.retrieval, SentenceIndex(store.embedder))  # builds and saves
    built = LexicalIndex.build
    monkeypatch.setattr(LexicalIndex, "build", lambda pages: pytest.fail("rebuilt an unchanged index"))
    again = HybridRetriever(Store(settings, HashEmbedder()), settings.retrieval, SentenceIndex(store.embedder))
    assert [n.node.metadata["title"] for n in again._sparse("speech", None)] == ["A paper on speech"]
    monkeypatch.setattr(LexicalIndex, "build", built)
    # Another client (another machine) writes to the server: the saved copy is stale and rebuilt.
    other = Store(Settings(data_dir=tmp_path / "elsewhere", store=where), HashEmbedder())
    other.ingest([make_paper("A paper on quokkas", "We count quokkas on an island.", "t:9")])
    fresh = HybridRetriever(Store(settings, HashEmbedder()), settings.retrieval, SentenceIndex(store.embedder))
    assert [n.node.metadata["title"] for n in fresh._sparse("quokkas", None)] == ["A paper on quokkas"]


@pytest.mark.e2e
@pytest.mark.slow
def test_reingest_over_http_embeds_nothing(http_assistant: Assistant) -> None:
    counting = TimedEmbedder(http_assistant.embedder)
    store = Store(http_assistant.settings, counting)  # a fresh client on the same server
    before = store.status()
    report = store.ingest(load_corpus(http_assistant.settings.corpus.seed_paths))
    assert counting.texts == 0
    assert (report.chunks_added, report.chunks_removed, report.papers_removed) == (0, 0, 0)
    assert (report.papers, report.chunks_total) == (before.papers, before.chunks)


@pytest.mark.e2e
@pytest.mark.slow
def test_retrieval_over_http_matches_the_embedded_store(http_assistant: Assistant, seed_assistant: Assistant) -> None:
    assert http_assistant.fingerprint == seed_assistant.fingerprint
    for question in RETRIEVAL_QUESTIONS:
        over_http = [p.title for p in http_assistant.retrieve(question)]
        embedded = [p.title for p in seed_assistant.retrieve(question)]
        # Two HNSW graphs built apart may order near-ties differently; the best paper and most of the rest agree.
        assert over_http[0] == embedded[0] and len(set(over_http) & set(embedded)) >= len(embedded) - 1, question
    assert http_assistant.retrieve(KN_QUESTION)[0].title == KN_TITLE
    only = next(pid for pid, paper in http_assistant.papers.items() if paper.title == KN_TITLE)
    assert [p.paper_id for p in http_assistant.retrieve(KN_QUESTION, paper_ids=[only])] == [only]


@pytest.mark.e2e
@pytest.mark.slow
def test_ask_over_http_store_with_the_local_model(http_assistant: Assistant) -> None:
    answer = http_assistant.ask(KN_QUESTION)
    assert not answer.abstained, answer.answer
    assert "67.6" in answer.answer
    assert KN_TITLE in [c.title for c in answer.citations]
    assert answer.index_fingerprint == http_assistant.fingerprint


@pytest.mark.e2e
def test_chroma_server_restart_keeps_the_index(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with running(start_chroma(db, tmp_path / "logs")) as first:
        store = Store(http_store_settings(first, tmp_path / "data"), HashEmbedder())
        store.ingest(tiny_corpus())
        ids = {c.id for c in store.all_chunks()}
    with running(start_chroma(db, tmp_path / "logs")) as second:
        counting = TimedEmbedder(HashEmbedder())
        store = Store(http_store_settings(second, tmp_path / "data"), counting)
        assert {c.id for c in store.all_chunks()} == ids
        report = store.ingest(tiny_corpus())
        assert (report.chunks_added, report.chunks_total, counting.texts) == (0, 3, 0)


SQLITE_MAX_VARIABLES = 32_766  # Chroma once read a whole collection with one statement of this many ids


@pytest.mark.slow
def test_store_reads_prunes_and_reingests_past_the_sqlite_variable_limit(tmp_path: Path) -> None:
    store = Store(Settings(data_dir=tmp_path / "data"), HashEmbedder())
    n = SQLITE_MAX_VARIABLES + 1000
    dim = HashEmbedder.dim
    for start in range(0, n, 5000):  # written directly in big batches: ingest would embed them one by one
        rows = range(start, min(n, start + 5000))
        vectors = np.zeros((len(rows), dim), dtype=np.float32)
        vectors[np.arange(len(rows)), [i % dim for i in rows]] = 1.0
        ids = [f"p{i}" for i in rows]
        store.papers.add(ids=ids, embeddings=np.zeros((len(rows), 1), dtype=np.float32),
                         documents=[f"Abstract {i}." for i in rows],
                         metadatas=[{"title": f"Paper {i}", "abstract": f"Abstract {i}.", "content_hash": "h"}
                                    for i in rows])
        store.chunks.add(ids=[f"{pid}-0" for pid in ids], embeddings=vectors, documents=[f"Abstract {i}." for i in rows],
                         metadatas=[{"paper_id": pid, "title": f"Paper {i}", "chunk_index": 0} for i, pid in
                                    zip(rows, ids)])
    assert (len(store.all_papers()), len(store.all_chunks())) == (n, n)
    report = store.ingest(tiny_corpus())
    assert (report.chunks_added, report.chunks_total) == (3, n + 3)
    pruned = store.ingest(tiny_corpus(), prune=True)
    assert (pruned.papers_removed, pruned.chunks_removed, pruned.papers, pruned.chunks_total) == (n, n, 3, 3)


def test_unreachable_chroma_server_is_a_store_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(data_dir=tmp_path / "data", store={"kind": "http", "host": "127.0.0.1", "port": port})
    with pytest.raises(StoreError, match=rf"http://127\.0\.0\.1:{port}.*start the Chroma server"):
        Store(settings, HashEmbedder())


# --------------------------------------------------------------------------- OpenAI-compatible server


@pytest.fixture(scope="module")
def llama_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """llama-cpp-python's OpenAI-compatible server over the packaged model, for this module."""
    with running(start_llama_server(model_path, tmp_path_factory.mktemp("llama-server"))) as server:
        yield server


@pytest.fixture(scope="module")
def openai_assistant(llama_server: Server, seed_settings: Settings) -> Assistant:
    """The assistant over the seed index, answering through the server (the openai backend)."""
    llm = seed_settings.llm.model_copy(update={"backend": "openai", "base_url": f"{llama_server.url}/v1",
                                               "model": MODEL_ALIAS, "model_path": None})
    return Assistant.from_settings(seed_settings.model_copy(update={"llm": llm}))


@pytest.mark.e2e
@pytest.mark.slow
def test_openai_backend_is_chosen_by_environment(llama_server: Server, seed_settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPER_ASSISTANT_DATA_DIR", str(seed_settings.data_dir))
    monkeypatch.setenv("PAPER_ASSISTANT_LLM__BACKEND", "openai")
    monkeypatch.setenv("PAPER_ASSISTANT_LLM__BASE_URL", f"{llama_server.url}/v1")
    monkeypatch.setenv("PAPER_ASSISTANT_LLM__MODEL", MODEL_ALIAS)
    monkeypatch.setenv("PAPER_ASSISTANT_LLM__API_KEY", "sk-local-test")
    settings = Settings()
    assert isinstance(make_chat_model(settings.llm, settings.model_cache_dir), OpenAIChat)
    answer = Assistant.from_settings(settings).ask(KN_QUESTION)
    assert not answer.abstained, answer.answer
    assert "67.6" in answer.answer
    assert KN_TITLE in [c.title for c in answer.citations]
    assert answer.model == MODEL_ALIAS
    assert answer.usage.get("completion_tokens", 0) > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_ask_stream_through_the_server(openai_assistant: Assistant) -> None:
    events = list(openai_assistant.ask_stream(KN_QUESTION))
    tokens = [e.text for e in events if e.kind == "token"]
    answer = events[-1].answer
    assert events[-1].kind == "answer" and answer is not None
    assert len(tokens) > 3 and "67.6" in "".join(tokens)  # streamed piece by piece, not in one block
    assert not answer.abstained and "67.6" in answer.answer
    assert KN_TITLE in [c.title for c in answer.citations]
    assert 0 < answer.usage["completion_tokens"] <= openai_assistant.settings.llm.max_tokens
    assert answer.timings_ms["first_token"] <= answer.timings_ms["total"]


@pytest.mark.e2e
@pytest.mark.slow
def test_off_topic_question_abstains_without_calling_the_server(openai_assistant: Assistant) -> None:
    answer = openai_assistant.ask("What is a good recipe for mushroom risotto?")
    assert answer.abstained and answer.answer == REFUSAL and answer.usage == {}


def test_dead_base_url_is_backend_unavailable_naming_the_setting(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # a closed port: the connection is refused at once
    settings = Settings(
        data_dir=tmp_path / "data",
        retrieval={"min_dense_score": -1.0},  # always reach the model
        llm={"backend": "openai", "base_url": url, "timeout_s": 600},
    )
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in tiny_corpus()))
    assistant = Assistant(settings, embedder=HashEmbedder())
    assistant.ingest([corpus])
    with pytest.raises(BackendUnavailable, match="PAPER_ASSISTANT_LLM__BASE_URL") as caught:
        assistant.ask("How much does the method improve graphs?")
    assert url in str(caught.value) and "\n" not in str(caught.value)


# --------------------------------------------------------------------------- token budgets


def prompt_tokens(messages: list[dict[str, str]], encoding: str) -> int:
    """Tokens of a chat prompt as the model reads it: contents plus the chat template's wrapping."""
    return sum(count_tokens(m["content"], encoding) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages) + \
        TEMPLATE_TOKENS_REPLY


@pytest.fixture(scope="module")
def fake_seed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the seed corpus indexed with the fake embedder (fast, deterministic)."""
    data_dir = tmp_path_factory.mktemp("budget-index")
    settings = Settings(data_dir=data_dir)
    Store(settings, HashEmbedder()).ingest(load_corpus(settings.corpus.seed_paths))
    return data_dir


def sent_prompt(data_dir: Path, question: str, groups: dict[str, dict[str, object]] | None = None,
                ) -> tuple[Settings, list[dict[str, str]]]:
    """The messages the model receives for `question` under the given settings groups."""
    groups = groups or {}
    retrieval = {"min_dense_score": -1.0, **groups.get("retrieval", {})}  # always reach the model
    others = {name: values for name, values in groups.items() if name != "retrieval"}
    settings = Settings(data_dir=data_dir, retrieval=retrieval, **others)  # type: ignore[arg-type]
    chat = QueueChat(["It reaches 67.6 [1]."])
    Assistant(settings, chat_model=chat, embedder=HashEmbedder()).ask(question)
    assert len(chat.seen) == 1
    return settings, chat.seen[0]


BUDGET_QUESTIONS = (
    KN_QUESTION,
    # Long and broad, but not "which papers": a list question never reaches the model.
    "How do the evaluated language models compare, and what benchmarks, datasets and metrics do they report?",
)


@pytest.mark.parametrize("question", BUDGET_QUESTIONS)
def test_default_prompt_fits_the_window_minus_the_answer(fake_seed_store: Path, question: str) -> None:
    settings, messages = sent_prompt(fake_seed_store, question)
    window = settings.llm.n_ctx - settings.llm.max_tokens
    assert prompt_tokens(messages, settings.chunking.encoding) <= window


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param({"retrieval": {"top_k": 50, "candidates": 200, "passage_tokens": 2000, "context_tokens": 100_000}},
                     id="huge-top-k-and-passage-budget"),
        pytest.param({"llm": {"n_ctx": 512, "max_tokens": 160}}, id="small-window-default-budgets"),
    ],
)
def test_prompt_fits_the_window_whatever_the_retrieval_budgets(fake_seed_store: Path,
                                                               groups: dict[str, dict[str, object]]) -> None:
    settings, messages = sent_prompt(fake_seed_store, BUDGET_QUESTIONS[1], groups)
    window = settings.llm.n_ctx - settings.llm.max_tokens
    assert prompt_tokens(messages, settings.chunking.encoding) <= window
    assert "[1]" in messages[1]["content"]  # the budget still leaves room for evidence
