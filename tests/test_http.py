"""The HTTP API against running servers: the real `paper-assistant serve` (seed index, local model) and
in-thread servers with a scripted model for stalls and failures. Answers, streaming (sources before the
model starts, then tokens, then the answer), papers, health, docs, auth, and every error case as JSON
or, once a stream has started, as an SSE `error` event (never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.api import Assistant
from assistant.config import Settings
from assistant.errors import BackendUnavailable
from assistant.followup import CitedPaper, Turn, rewrite_followup
from assistant.runtime import is_loopback
from harness.servers import free_port
from tests.conftest_server import (
    ANSWER_TIMEOUT_S,
    REPO,
    ScriptedChat,
    ServerProcess,
    ThreadServer,
    serve_app,
    shared_real_server,
    slow_script,
    sse_events,
)

PALOMA_Q = "How many distinct text domains does the Paloma benchmark use to measure language model fit?"
PALOMA_TITLE = "Paloma: A Benchmark for Evaluating Language Model Fit"
SCRIPTED_ANSWER = ["The Paloma benchmark ", "measures language model fit ", "on 585 text domains [1]."]


@pytest.fixture(scope="session")
def real_server(seed_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """`python -m assistant serve` over the seed index with the real local model (shared with test_ui)."""
    return shared_real_server(seed_settings, tmp_path_factory.getbasetemp() / "server-logs")


@pytest.fixture(scope="module")
def scripted(seed_assistant: Assistant, seed_settings: Settings) -> Iterator[tuple[str, ScriptedChat]]:
    """An in-thread API server over the seed index whose model plays scripts."""
    chat = ScriptedChat(default=list(SCRIPTED_ANSWER))
    assistant = Assistant(seed_settings, chat_model=chat, embedder=seed_assistant.embedder)
    with ThreadServer(serve_app(assistant, ui=False)) as server:
        yield server.url, chat


def post(url: str, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=ANSWER_TIMEOUT_S, **kwargs)  # type: ignore[arg-type]


def stream_events_of(url: str, body: object) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """Every SSE event of a stream that must start (200)."""
    with httpx.stream("POST", url + "/v1/answer/stream", json=body, timeout=ANSWER_TIMEOUT_S) as response:
        assert response.status_code == 200, response.read()
        return list(sse_events(response))


# --------------------------------------------------------------------------- the real server


def test_health_reports_index_model_and_corpus(real_server: ServerProcess, seed_assistant: Assistant) -> None:
    health = httpx.get(real_server.url + "/healthz", timeout=10)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["index_loaded"] and body["model_ready"]
    assert body["corpus_size"] == len(seed_assistant.papers) > 100
    assert body["index_fingerprint"] == seed_assistant.fingerprint and body["model"]


def test_papers_page_search_and_record(real_server: ServerProcess, seed_assistant: Assistant) -> None:
    first = httpx.get(real_server.url + "/v1/papers", params={"limit": 5}, timeout=10).json()
    second = httpx.get(real_server.url + "/v1/papers", params={"limit": 5, "offset": 5}, timeout=10).json()
    assert first["total"] == len(seed_assistant.papers) and len(first["items"]) == len(second["items"]) == 5
    titles = [p["title"] for p in first["items"] + second["items"]]
    assert titles == sorted(titles, key=str.lower) and len(set(titles)) == 10
    found = httpx.get(real_server.url + "/v1/papers", params={"q": "paloma"}, timeout=10).json()
    assert [p["title"] for p in found["items"]] == [PALOMA_TITLE] and found["total"] == 1
    record = httpx.get(f"{real_server.url}/v1/papers/{found['items'][0]['id']}", timeout=10).json()
    assert record["title"] == PALOMA_TITLE and "585" in record["raw_abstract"] and record["abstract"]
    missing = httpx.get(real_server.url + "/v1/papers/p000000000000", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_stream_then_follow_up_with_the_real_model(real_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.perf_counter()
    sources_s: float | None = None
    first_token_s: float | None = None
    kinds: list[str] = []
    sources: dict | None = None  # type: ignore[type-arg]
    tokens: list[str] = []
    final: dict | None = None  # type: ignore[type-arg]
    with httpx.stream("POST", real_server.url + "/v1/answer/stream", json={"question": PALOMA_Q},
                      timeout=ANSWER_TIMEOUT_S) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for event, data in sse_events(response):
            kinds.append(event)
            if event == "sources":
                sources_s, sources = time.perf_counter() - started, data
            elif event == "token":
                first_token_s = first_token_s or time.perf_counter() - started
                tokens.append(data["text"])
            else:
                assert event == "answer", data
                final = data
    total_s = time.perf_counter() - started
    assert kinds == ["sources"] + ["token"] * len(tokens) + ["answer"] and tokens and final is not None
    assert sources is not None and sources["passages"] == final["passages"]
    assert set(final) == {"question", "answer", "abstained", "kind", "items", "draft", "question_used",
                          "question_truncated", "citations", "claims", "passages", "timings_ms", "usage", "model",
                          "index_fingerprint"}
    assert final["kind"] == "prose" and final["items"] == [] and "585" in final["draft"]
    assert not final["abstained"] and "585" in final["answer"], final["answer"]
    assert PALOMA_TITLE in [c["title"] for c in final["citations"]]
    assert all({"key", "paper_id", "title", "quote", "support"} <= set(c) for c in final["citations"])

    # A follow-up with the first answer as history is rewritten to name the paper, then answered.
    started_follow = time.perf_counter()
    follow = post(real_server.url, "/v1/answer", {"question": "and what range of domains does it cover?", "history": [final]})
    follow_s = time.perf_counter() - started_follow
    assert follow.status_code == 200, follow.text
    answer = follow.json()
    assert answer["question"].startswith(f'Regarding "{PALOMA_TITLE}"') and answer["passages"]
    assert answer["passages"][0]["title"] == PALOMA_TITLE

    report = {"stream_sources_s": round(sources_s or 0, 3), "stream_first_token_s": round(first_token_s or 0, 2),
              "stream_total_s": round(total_s, 2),
              "answer_total_s": round(follow_s, 2), "server_timings_ms": [final["timings_ms"], answer["timings_ms"]],
              "usage": [final["usage"], answer["usage"]]}
    out = REPO / "artifacts" / "http-latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("latency through the API:", json.dumps(report))


BAD_BODIES = [
    ({"question": ""}, "question is empty"),
    ({"question": "   \n\t "}, "question is empty"),
    ({"question": PALOMA_Q, "paper_ids": ["p000000000000"]}, "unknown paper id(s): p000000000000"),
    ({"question": 42}, "question: Input should be a valid string"),
    ({"question": PALOMA_Q, "top_k": "many"}, "top_k: Input should be a valid integer"),
    ({"question": PALOMA_Q, "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
    ({"question": PALOMA_Q, "paper_ids": "p1"}, "paper_ids: Input should be a valid list"),
    ({"question": PALOMA_Q, "history": [{"answer": "no question"}]}, "history.0.question: Field required"),
    ({"questoin": PALOMA_Q}, "question: Field required"),
    (["not", "an", "object"], "Input should be a valid dictionary"),
]


@pytest.mark.parametrize("path", ["/v1/answer", "/v1/answer/stream"])
@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_input_is_a_readable_422(real_server: ServerProcess, path: str, body: object, message: str) -> None:
    response = post(real_server.url, path, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["error"] == "invalid_request" and message in payload["detail"], payload
    assert "Traceback" not in response.text


def test_malformed_json_is_a_readable_422(real_server: ServerProcess) -> None:
    response = httpx.post(real_server.url + "/v1/answer", content=b'{"question": ', timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]


def test_docs_and_openapi_are_served_offline(real_server: ServerProcess) -> None:
    docs = httpx.get(real_server.url + "/docs", timeout=10)
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text and "https://" not in docs.text
    assert httpx.get(real_server.url + "/docs-static/swagger-ui-bundle.js", timeout=10).status_code == 200
    paths = httpx.get(real_server.url + "/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/answer", "/v1/answer/stream", "/v1/papers", "/v1/papers/{paper_id}", "/healthz"} <= set(paths)


def test_refuses_to_serve_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PAPER_ASSISTANT_API_KEY"}
    env["PAPER_ASSISTANT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "assistant", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "without an API key" in done.stderr and "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())  # refused before opening anything
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


# --------------------------------------------------------------------------- scripted model


def test_papers_and_health_do_not_wait_behind_a_generation(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    gate = threading.Event()
    chat.scripts.append(["The Paloma benchmark ", gate, "measures fit on 585 text domains [1]."])
    first_token = threading.Event()
    events: list[str] = []

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as response:
            for event, _ in sse_events(response):
                events.append(event)
                if event == "token":
                    first_token.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert first_token.wait(30)
        # The generation is parked on the gate; these must still be served.
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
        assert httpx.get(url + "/v1/papers", params={"q": "paloma"}, timeout=10).json()["total"] == 1
        assert httpx.get(url + "/docs", timeout=10).status_code == 200
        assert events == ["sources", "token"]
    finally:
        gate.set()
        worker.join(60)
    assert events[-1] == "answer"


def test_sources_come_before_the_model_starts_and_list_the_cited_papers(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    gate = threading.Event()
    chat.scripts.append([gate, *SCRIPTED_ANSWER])  # the model writes nothing until the gate opens
    arrived = threading.Event()
    events: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                events.append(event)
                arrived.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert arrived.wait(30), "no event while the model had not started"
        assert [e for e, _ in events] == ["sources"]
        sources = events[0][1]
        assert set(sources) == {"passages"} and sources["passages"][0]["title"] == PALOMA_TITLE
        assert all({"paper_id", "title", "text", "score", "dense_score"} <= set(p) for p in sources["passages"])
    finally:
        gate.set()
        worker.join(60)
    kinds = [e for e, _ in events]
    assert kinds == ["sources"] + ["token"] * len(SCRIPTED_ANSWER) + ["answer"]
    answer = events[-1][1]
    assert not answer["abstained"] and answer["citations"] and answer["passages"] == sources["passages"]
    assert {c["paper_id"] for c in answer["citations"]} <= {p["paper_id"] for p in sources["passages"]}


def test_a_question_refused_at_retrieval_streams_the_answer_alone(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    calls = len(chat.seen)
    with httpx.stream("POST", url + "/v1/answer/stream", json={"question": "What is a good recipe for mushroom risotto?"},
                      timeout=60) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert [e for e, _ in events] == ["answer"] and events[0][1]["abstained"]  # nothing to show as sources
    assert len(chat.seen) == calls  # the model was not asked


def test_failure_mid_stream_is_an_error_event(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    chat.scripts.append(["The Paloma benchmark ", BackendUnavailable("chat server went away; check its URL")])
    with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert [e for e, _ in events] == ["sources", "token", "error"]
    assert events[-1][1] == {"error": "backend_unavailable", "detail": "chat server went away; check its URL"}


def test_backend_failure_before_the_first_token_is_an_error_event_after_sources(
    scripted: tuple[str, ScriptedChat],
) -> None:
    url, chat = scripted
    chat.scripts.append([BackendUnavailable("chat server went away; check its URL")])
    with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as response:
        assert response.status_code == 200  # the sources were on their way before the model was asked
        events = list(sse_events(response))
    assert [e for e, _ in events] == ["sources", "error"]
    assert events[0][1]["passages"][0]["title"] == PALOMA_TITLE
    assert events[-1][1] == {"error": "backend_unavailable", "detail": "chat server went away; check its URL"}
    chat.scripts.append([BackendUnavailable("chat server went away; check its URL")])
    plain = post(url, "/v1/answer", {"question": PALOMA_Q})  # the plain answer still says it with a status
    assert plain.status_code == 503 and plain.json()["error"] == "backend_unavailable"


def test_unexpected_failure_is_json_500_without_traceback(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    chat.scripts.append([RuntimeError("secret internal state")])
    response = post(url, "/v1/answer", {"question": PALOMA_Q})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "unexpected server error; the server log has the details"}
    chat.scripts.append([RuntimeError("secret internal state")])
    with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as streamed:
        assert streamed.status_code == 200  # the failure came after the sources: an error event ends the stream
        events = list(sse_events(streamed))
    assert [e for e, _ in events] == ["sources", "error"]
    assert events[-1][1] == {"error": "internal_error", "detail": "unexpected server error; see the server log"}
    assert "secret" not in json.dumps(events) and "Traceback" not in json.dumps(events)


def test_client_leaving_mid_stream_frees_the_model(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    chat.scripts.append(["slow ", *slow_script(200, 0.2)])
    with httpx.stream("POST", url + "/v1/answer/stream", json={"question": PALOMA_Q}, timeout=60) as response:
        for event, _ in sse_events(response):
            assert event in ("sources", "token")
            if event == "token":
                break  # hang up after the first token
    # The scripted model holds a lock like the real one: a generation left open would block this one.
    answer = post(url, "/v1/answer", {"question": PALOMA_Q})
    assert answer.status_code == 200, answer.text
    assert not answer.json()["abstained"]


def test_client_leaving_a_plain_answer_frees_the_model(scripted: tuple[str, ScriptedChat]) -> None:
    url, chat = scripted
    chat.scripts.append(["slow ", *slow_script(200, 0.2)])  # 40 s of generation if nobody stops it
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/answer", json={"question": PALOMA_Q}, timeout=3)  # the client gives up
    # The scripted model holds a lock like the real one: a generation left running would block this one.
    answer = post(url, "/v1/answer", {"question": PALOMA_Q})
    assert answer.status_code == 200, answer.text
    assert not answer.json()["abstained"]


def test_api_key_guards_the_api_and_ui_but_not_health(seed_assistant: Assistant, seed_settings: Settings) -> None:
    assistant = Assistant(seed_settings, chat_model=ScriptedChat(default=list(SCRIPTED_ANSWER)),
                          embedder=seed_assistant.embedder)
    with ThreadServer(serve_app(assistant, api_key="s3cret-key")) as server:
        # The UI asks for the key as its login password.
        assert httpx.get(server.url + "/config", timeout=10).status_code == 401
        with httpx.Client(base_url=server.url, timeout=10) as browser:
            assert browser.post("/login", data={"username": "me", "password": "wrong"}).status_code == 400
            assert browser.post("/login", data={"username": "me", "password": "s3cret-key"}).status_code == 200
            assert browser.get("/config").status_code == 200
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key"}):
            denied = httpx.get(server.url + "/v1/papers", headers=headers, timeout=10)
            assert denied.status_code == 401 and denied.json()["error"] == "unauthorized", denied.text
            assert post(server.url, "/v1/answer", {"question": PALOMA_Q}, headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret-key"}
        assert httpx.get(server.url + "/v1/papers", headers=ok, timeout=10).status_code == 200
        answered = post(server.url, "/v1/answer", {"question": PALOMA_Q}, headers=ok)
        assert answered.status_code == 200 and not answered.json()["abstained"]


# --------------------------------------------------------------------------- model or backend down


def test_missing_model_is_503_with_the_reason(seed_assistant: Assistant, seed_settings: Settings, tmp_path: Path) -> None:
    settings = seed_settings.model_copy(update={"llm": seed_settings.llm.model_copy(
        update={"model_path": tmp_path / "missing.gguf"})})
    with ThreadServer(serve_app(Assistant(settings, embedder=seed_assistant.embedder), ui=False)) as server:
        health = httpx.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and not health.json()["model_ready"]
        assert "missing.gguf not found" in health.json()["model_error"]
        response = post(server.url, "/v1/answer", {"question": PALOMA_Q})
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "model_unavailable" and "MODEL_PATH" in response.json()["detail"]
        # The stream has sent the retrieved papers by the time the model is needed: the failure is its last event.
        events = stream_events_of(server.url, {"question": PALOMA_Q})
        assert [e for e, _ in events] == ["sources", "error"]
        assert events[-1][1]["error"] == "model_unavailable" and "MODEL_PATH" in events[-1][1]["detail"]
        assert httpx.get(server.url + "/v1/papers", timeout=10).status_code == 200  # the rest still works


def test_unreachable_backend_is_503_with_the_reason(seed_assistant: Assistant, seed_settings: Settings) -> None:
    llm = seed_settings.llm.model_copy(update={"backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                                               "timeout_s": 5.0})
    settings = seed_settings.model_copy(update={"llm": llm})
    with ThreadServer(serve_app(Assistant(settings, embedder=seed_assistant.embedder), ui=False)) as server:
        response = post(server.url, "/v1/answer", {"question": PALOMA_Q})
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "backend_unavailable" and "unreachable" in response.json()["detail"]
        events = stream_events_of(server.url, {"question": PALOMA_Q})
        assert [e for e, _ in events] == ["sources", "error"]
        assert events[-1][1]["error"] == "backend_unavailable" and "unreachable" in events[-1][1]["detail"]
        assert httpx.get(server.url + "/healthz", timeout=10).json()["model_ready"] is False


# --------------------------------------------------------------------------- follow-up rewriting (pure)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("and what dataset did they use?", 'Regarding "Paper A": What dataset did they use?'),
        ("What about its accuracy?", 'Regarding "Paper A": What about its accuracy?'),
        ("which dataset?", 'Regarding "Paper A": Which dataset?'),
        ("What is PARSeq?", "What is PARSeq?"),
        ("And on WMT14?", 'Regarding "Paper A": On WMT14?'),
        ("How many tasks was the 280-billion-parameter Gopher model evaluated on in total?",
         "How many tasks was the 280-billion-parameter Gopher model evaluated on in total?"),
        ("What perplexity does the Kneser-Ney baseline reach?", "What perplexity does the Kneser-Ney baseline reach?"),
    ],
)
def test_follow_ups_are_rewritten_to_stand_alone(question: str, expected: str) -> None:
    history = [Turn(question="What is paper A about?", answer="It studies A [1].", citations=[CitedPaper(title="Paper A")])]
    assert rewrite_followup(question, history) == expected
    assert rewrite_followup(question, []) == question


def test_follow_up_after_an_abstention_names_the_last_question() -> None:
    history = [Turn(question='Regarding the question "What is X?": Why?', answer="The papers I have do not answer.")]
    assert rewrite_followup("and how?", history) == 'Regarding the question "Why?": How?'


def test_unknown_or_repeated_query_parameters_are_refused(scripted: tuple[str, ScriptedChat]) -> None:
    url, _ = scripted
    typo = httpx.get(url + "/v1/papers", params={"limt": 5}, timeout=30)
    assert typo.status_code == 422 and "'limt'" in typo.json()["detail"] and "offset, limit, q" in typo.json()["detail"]
    twice = httpx.get(url + "/v1/papers?q=a&q=b", timeout=30)
    assert twice.status_code == 422 and "q given more than once" in twice.json()["detail"]
    assert httpx.get(url + "/v1/papers", params={"q": "paloma", "limit": 5}, timeout=30).status_code == 200
