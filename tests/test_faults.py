"""Faults: the chat server killed mid-answer, a chat server that stalls or is down, a Chroma server that
goes away and comes back. Each time the client gets a clear JSON error or SSE `error` event, /healthz
says what is wrong, the API keeps serving, and answering resumes without a restart once the part is back.
A stream meets a chat server's failure after its `sources` event, so it ends with an `error` event; a
store failure comes before any event, so it is a JSON error with its status on both answer routes.

The chat server and Chroma are the real ones (llama-cpp-python's OpenAI server, `chroma run`); only the
stalling chat server is a scripted stand-in, since a real one cannot be made to hang on demand.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from assistant.api import Assistant
from assistant.config import Settings
from harness.servers import MODEL_ALIAS, free_port, running, start_chroma, start_llama_server
from tests.conftest_server import ThreadServer, serve_app, sse_events, write_jsonl
from tests.fakes import QueueChat

PALOMA_Q = "How many distinct text domains does the Paloma benchmark use to measure language model fit?"
PALOMA_TITLE = "Paloma: A Benchmark for Evaluating Language Model Fit"
TIMEOUT_S = 300


def openai_settings(seed_settings: Settings, base_url: str, **llm: object) -> Settings:
    """The seed index's settings with the chat model behind an OpenAI-compatible server at `base_url`."""
    update = {"backend": "openai", "base_url": base_url, "model": MODEL_ALIAS, **llm}
    return seed_settings.model_copy(update={"llm": seed_settings.llm.model_copy(update=update)})


def health(url: str) -> tuple[int, dict[str, object]]:
    response = httpx.get(url + "/healthz", timeout=30)
    return response.status_code, response.json()


# --------------------------------------------------------------------------- the chat server killed mid-stream


@pytest.mark.e2e
@pytest.mark.slow
def test_chat_server_killed_mid_answer_then_back(seed_settings: Settings, seed_assistant: Assistant,
                                                 tmp_path: Path) -> None:
    assert seed_settings.llm.model_path is not None
    port = free_port()
    llama = start_llama_server(seed_settings.llm.model_path, tmp_path / "logs", port=port)
    settings = openai_settings(seed_settings, f"http://127.0.0.1:{port}/v1", max_retries=0)
    assistant = Assistant(settings, embedder=seed_assistant.embedder)
    with running(llama), ThreadServer(serve_app(assistant, ui=False)) as server:
        assert health(server.url)[0] == 200
        events: list[tuple[str, dict[str, object]]] = []
        with httpx.stream("POST", server.url + "/v1/answer/stream", json={"question": PALOMA_Q},
                          timeout=TIMEOUT_S) as response:
            assert response.status_code == 200, response.read()
            for event, data in sse_events(response):
                events.append((event, data))
                if event == "token" and len(events) == 2:
                    os.killpg(llama.pid, signal.SIGKILL)  # the chat server dies while it is writing the answer
        assert events[0][0] == "sources" and events[1][0] == "token"
        assert events[-1][0] == "error", events[-3:]
        error = events[-1][1]
        assert error["error"] == "backend_unavailable" and "broke off" in str(error["detail"]), error
        assert "Traceback" not in str(error["detail"])

        # The API stays up and health names the cause.
        status, body = health(server.url)
        assert status == 503 and body["model_ready"] is False and "unreachable" in str(body["model_error"])
        assert body["last_error"]["error"] == "backend_unavailable"  # type: ignore[index]
        assert httpx.get(server.url + "/v1/papers", timeout=30).json()["total"] == len(assistant.papers)
        refused = httpx.post(server.url + "/v1/answer", json={"question": PALOMA_Q}, timeout=TIMEOUT_S)
        assert refused.status_code == 503 and refused.json()["error"] == "backend_unavailable"

        # The chat server comes back on the same port: answering resumes without restarting the API.
        llama.stop()
        with running(start_llama_server(seed_settings.llm.model_path, tmp_path / "logs", port=port)):
            assert health(server.url)[0] == 200
            answer = httpx.post(server.url + "/v1/answer", json={"question": PALOMA_Q}, timeout=TIMEOUT_S)
            assert answer.status_code == 200, answer.text
            assert PALOMA_TITLE in [c["title"] for c in answer.json()["citations"]], answer.json()
            assert health(server.url)[1]["last_error"] is None


# --------------------------------------------------------------------------- a chat server that stalls or is down


class StallingChatServer:
    """An OpenAI-compatible endpoint that accepts each chat request and then never answers; counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> dict[str, object]:
            self.requests += 1
            await request.body()
            while not await request.is_disconnected():  # stall until the client gives up
                await asyncio.sleep(0.1)
            return {}

        self.app = app


def test_stalled_chat_server_is_504_after_bounded_retries(seed_settings: Settings, seed_assistant: Assistant) -> None:
    stalled = StallingChatServer()
    with ThreadServer(stalled.app) as backend:  # type: ignore[arg-type]
        settings = openai_settings(seed_settings, backend.url + "/v1", timeout_s=1.0, max_retries=2)
        assistant = Assistant(settings, embedder=seed_assistant.embedder)
        with ThreadServer(serve_app(assistant, ui=False)) as server:
            response = httpx.post(server.url + "/v1/answer", json={"question": PALOMA_Q}, timeout=TIMEOUT_S)
            assert response.status_code == 504, response.text
            body = response.json()
            assert body["error"] == "backend_timeout"
            assert "did not answer within 1 s" in body["detail"] and "PAPER_ASSISTANT_LLM__TIMEOUT_S" in body["detail"]
            assert stalled.requests == 3  # the first try and two retries, then no more

            status, report = health(server.url)  # the server accepts connections, so it counts as up...
            assert status == 200 and report["model_ready"] is True
            assert report["last_error"] == body  # ...but health shows the last answer timed out

            # The stream has sent the retrieved papers by then: the timeout is its last event.
            with httpx.stream("POST", server.url + "/v1/answer/stream", json={"question": PALOMA_Q},
                              timeout=TIMEOUT_S) as streamed:
                assert streamed.status_code == 200
                events = list(sse_events(streamed))
            assert [e for e, _ in events] == ["sources", "error"]
            assert events[-1][1]["error"] == "backend_timeout"
            assert "did not answer within 1 s" in str(events[-1][1]["detail"])
            assert stalled.requests == 6


def test_chat_server_down_is_503_and_health_says_so(seed_settings: Settings, seed_assistant: Assistant) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    settings = openai_settings(seed_settings, base_url, timeout_s=5.0, max_retries=1)
    assistant = Assistant(settings, embedder=seed_assistant.embedder)
    with ThreadServer(serve_app(assistant, ui=False)) as server:
        status, report = health(server.url)  # seen before anyone asks
        assert status == 503 and report["status"] == "degraded" and report["model_ready"] is False
        assert base_url in str(report["model_error"]) and "PAPER_ASSISTANT_LLM__BASE_URL" in str(report["model_error"])
        response = httpx.post(server.url + "/v1/answer", json={"question": PALOMA_Q}, timeout=TIMEOUT_S)
        assert response.status_code == 503 and response.json()["error"] == "backend_unavailable"
        assert "unreachable" in response.json()["detail"]


# --------------------------------------------------------------------------- the Chroma server goes away


@pytest.fixture
def tiny_corpus_file(tmp_path: Path) -> Path:
    rows = [
        {"title": "Graph transformers at scale", "abstract": "We train graph transformers on 12 million graphs. "
         "Our model improves node classification accuracy by 4.1 points."},
        {"title": "Speech recognition with small models", "abstract": "We distil a speech recogniser into 30 "
         "million parameters. Word error rate rises by only 0.3 points."},
    ]
    return write_jsonl(tmp_path / "tiny.jsonl", rows)


@pytest.mark.slow
def test_chroma_server_down_then_back(seed_assistant: Assistant, tiny_corpus_file: Path, tmp_path: Path) -> None:
    port = free_port()
    db, logs = tmp_path / "chroma-db", tmp_path / "logs"
    chroma = start_chroma(db, logs, port=port)
    settings = Settings(data_dir=tmp_path / "data", store={"kind": "http", "port": port})
    chat = QueueChat(["Graph transformers improve node classification accuracy by 4.1 points [1]."] * 3)
    assistant = Assistant(settings, chat_model=chat, embedder=seed_assistant.embedder)
    question = {"question": "By how much do graph transformers improve node classification accuracy?"}
    with running(chroma):
        assistant.ingest([tiny_corpus_file])
        with ThreadServer(serve_app(assistant, ui=False)) as server:
            first = httpx.post(server.url + "/v1/answer", json=question, timeout=TIMEOUT_S)
            assert first.status_code == 200 and not first.json()["abstained"], first.text

            os.killpg(chroma.pid, signal.SIGKILL)
            chroma.process.wait(10)
            for path in ("/v1/answer", "/v1/answer/stream"):
                down = httpx.post(server.url + path, json=question, timeout=TIMEOUT_S)
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "store_unavailable" and "Chroma server" in down.json()["detail"]
            status, report = health(server.url)
            assert status == 503 and report["store_ready"] is False and str(port) in str(report["store_error"])
            assert report["last_error"]["error"] == "store_unavailable"  # type: ignore[index]
            assert httpx.get(server.url + "/v1/papers", timeout=30).json()["total"] == 2  # served from memory

            with running(start_chroma(db, logs, port=port)):  # same data, same port: no restart of the API
                status, report = health(server.url)
                assert status == 200 and report["store_ready"] is True, report
                again = httpx.post(server.url + "/v1/answer", json=question, timeout=TIMEOUT_S)
                assert again.status_code == 200 and not again.json()["abstained"], again.text
                assert again.json()["citations"][0]["title"] == "Graph transformers at scale"
