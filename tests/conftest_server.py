"""Helpers for the HTTP and UI tests: a real `paper-assistant serve` process, in-thread servers, a scripted model.

The real server is started once per test session (both test_http and test_ui use it) and stopped
at exit. In-thread servers run `serve_app` over an Assistant with a scripted chat model, for the
cases a real model cannot produce on demand (a stalled generation, a failure mid-stream).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn
from fastapi import FastAPI

from assistant.api import Assistant
from assistant.app import compose
from assistant.backends import ChatPiece, Messages
from assistant.config import Settings
from assistant.runtime import Runtime
from harness.servers import free_port

REPO = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 900  # a fresh checkout indexes the seeds and joins the 1 GB model first
ANSWER_TIMEOUT_S = 300  # one real-model answer on a busy 2-core machine


@dataclass
class ServerProcess:
    """`python -m assistant serve` in a subprocess; output goes to a log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def start_server(settings: Settings, log_dir: Path, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 wait: bool = True) -> ServerProcess:
    """Start `python -m assistant serve` on a free port with the settings' data dir and model; wait until it answers."""
    port = free_port()
    full_env = {**os.environ, "PAPER_ASSISTANT_DATA_DIR": str(settings.data_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    if settings.llm.model_path is not None:
        full_env["PAPER_ASSISTANT_LLM__MODEL_PATH"] = str(settings.llm.model_path)
    full_env.update(env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(port), *extra_args],
            cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    if wait:
        wait_until_up(server)
    return server


def wait_until_up(server: ServerProcess, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """Poll /healthz until the server answers (200 or 503); raise with the log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=5).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"server did not come up in {timeout_s} s:\n{server.log_tail()}")


_SHARED: dict[str, ServerProcess] = {}


def shared_real_server(settings: Settings, log_dir: Path) -> ServerProcess:
    """One real server (seed index, real local model) for the whole test session, stopped at exit."""
    key = str(settings.data_dir)
    server = _SHARED.get(key)
    if server is None or server.process.poll() is not None:
        server = start_server(settings, log_dir)
        _SHARED[key] = server
        atexit.register(server.stop)
    return server


def serve_app(assistant: Assistant, api_key: str | None = None, ui: bool = True) -> FastAPI:
    """The app `serve` runs, over `assistant`: the model loaded first, the API, and (ui=True) the chat UI."""
    runtime = Runtime(assistant, api_key=api_key)
    runtime.load_model()
    return compose(runtime, ui=ui)


class ThreadServer:
    """uvicorn serving an app in a background thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("in-thread server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


Step = str | float | BaseException | threading.Event


@dataclass
class ScriptedChat:
    """A chat model that plays scripts: text pieces, pauses (float seconds), waits (Event), raised errors.

    Each call takes the next script; when none is queued it plays `default`. Like the real local
    model it holds a lock while generating, so a generation that is never closed blocks the next.
    """

    default: list[Step] = field(default_factory=lambda: ["No scripted answer."])
    name: str = "scripted-chat"
    scripts: list[list[Step]] = field(default_factory=list)
    seen: list[Messages] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]:
        """Play the next script under the lock."""
        script = self.scripts.pop(0) if self.scripts else self.default
        self.seen.append(messages)
        if not self.lock.acquire(timeout=30):
            raise RuntimeError("scripted model lock still held: an earlier generation was never closed")
        try:
            count = 0
            for step in script:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, threading.Event):
                    step.wait(timeout=60)
                elif isinstance(step, float):
                    time.sleep(step)
                else:
                    count += 1
                    yield ChatPiece(text=step)
        finally:
            self.lock.release()
        yield ChatPiece(usage={"prompt_tokens": 10, "completion_tokens": count})


def slow_script(pieces: int, pause_s: float) -> list[Step]:
    """A long answer: `pieces` words, each after a pause."""
    script: list[Step] = []
    for _ in range(pieces):
        script += [pause_s, "slowly "]
    return script


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as a JSONL corpus file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a Server-Sent Events response, as they arrive."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if data:
        yield event, json.loads("\n".join(data))
