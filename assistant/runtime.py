"""What every face of a running assistant shares: admission, health, the stream bridge, follow-ups, start-up.

`Runtime` wraps one Assistant for the HTTP API and the chat UI alike: `admission.admitted()` bounds
the answers in flight (and learns how long one takes, for Retry-After), `answer_events` rewrites a
follow-up, runs `ask_stream` off the event loop and records the outcome for `/healthz`, `probe` and
`health` say what works now. `open_runtime` opens the index and loads the model once. No web
framework is imported here: the faces (server.py, ui.py) turn these results into HTTP and HTML.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field
from starlette.concurrency import iterate_in_threadpool

from .api import Assistant, StreamEvent
from .config import ServeSettings, Settings
from .errors import AssistantError, BackendUnavailable, InputError, ModelError, ServerBusy
from .followup import Turn, rewrite_followup
from .types import Answer

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ErrorBody(BaseModel):
    """Every error the API returns, and the last server-side failure /healthz shows."""

    error: str = Field(description="A machine-readable code, e.g. invalid_request, model_unavailable.")
    detail: str = Field(description="What went wrong and what to change.")

    @classmethod
    def of(cls, exc: AssistantError) -> ErrorBody:
        """The body for an AssistantError: its class's code and its message."""
        return cls(error=exc.code, detail=str(exc))


class Health(BaseModel):
    """Whether the server can answer, and if not, why."""

    status: str = Field(description="'ok' when the index is loaded and the model and store are reachable, else 'degraded'.")
    index_loaded: bool
    corpus_size: int = Field(description="Papers in the index.")
    index_fingerprint: str
    model_ready: bool = Field(description="The chat model is loaded (local) or its server accepts connections.")
    model: str | None = Field(None, description="Name of the chat model.")
    model_error: str | None = Field(None, description="Why the model is not ready, if it is not.")
    store_ready: bool = Field(description="The vector store answers (always true for the embedded store).")
    store_error: str | None = Field(None, description="Why the vector store is not reachable, if it is not.")
    last_error: ErrorBody | None = Field(
        None, description="The last answer that failed on the server side (backend, model or store); "
        "cleared by the next answer that succeeds."
    )
    pending: int = Field(description="Answer requests generating or waiting for the model now.")
    max_pending: int = Field(description="Answer requests accepted at once; more get 503 with Retry-After.")


# --------------------------------------------------------------------------- admission


@dataclass
class Ticket:
    """One admitted answer; the face sets `completed` when the answer reached its reader in full."""

    started: float = field(default_factory=time.perf_counter)
    completed: bool = False


class Admission:
    """Bounds the answers in flight (generating, or waiting for the one local model), for every face.

    Used from the event loop only, so plain counters suffice. Retry-After is the time one place
    takes to free up: the recent time a completed answer took from admission to its last byte
    (a moving average, so it includes the wait), divided by the places.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.limit = settings.max_pending
        self.pending = 0
        self.typical_s = settings.retry_after_initial_s
        self.keep = settings.retry_after_smoothing
        self.max_retry_s = settings.retry_after_max_s

    @contextmanager
    def admitted(self) -> Iterator[Ticket]:
        """Hold a place for the block, or raise ServerBusy when all are taken; a completed ticket
        teaches the typical answer time."""
        if self.pending >= self.limit:
            raise ServerBusy(self.pending, self.retry_after_s())
        self.pending += 1
        ticket = Ticket()
        try:
            yield ticket
        finally:
            self.pending -= 1
            if ticket.completed:
                seconds = time.perf_counter() - ticket.started
                self.typical_s = self.keep * self.typical_s + (1 - self.keep) * seconds

    def retry_after_s(self) -> int:
        """Seconds until a place is likely to free up, at least 1."""
        return max(1, min(self.max_retry_s, math.ceil(self.typical_s / self.limit)))


# --------------------------------------------------------------------------- the stream bridge


class _Guarded:
    """A sync event iterator whose steps and close never overlap (a step may still run in its
    thread when the reader goes away)."""

    def __init__(self, events: Iterator[StreamEvent]) -> None:
        self.events = events
        self.guard = threading.Lock()

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> StreamEvent:
        with self.guard:
            return next(self.events)

    def close(self) -> None:
        with self.guard:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()  # runs the generator's `finally`/`with lock:` exits, freeing the model


async def stream_events(events: Iterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """Iterate `ask_stream` off the event loop; ending early (client gone, Stop) closes it, releasing the model.

    A cancelled await can leave a step running in its thread (Gradio cancels the task outright), so
    the close then waits for that step in a thread of its own instead of failing with "generator
    already executing".
    """
    steps = _Guarded(events)
    try:
        async for event in iterate_in_threadpool(steps):
            yield event
    finally:
        if steps.guard.acquire(blocking=False):
            steps.guard.release()
            steps.close()
        else:
            threading.Thread(target=steps.close, name="close-answer-stream", daemon=True).start()


# --------------------------------------------------------------------------- the runtime


@dataclass
class Runtime:
    """What the faces serve: the assistant, the API key, admission, and the state of model, backend and store."""

    assistant: Assistant
    api_key: str | None = None
    model_name: str | None = None
    model_error: str | None = None
    backend_error: str | None = None
    store_error: str | None = None
    last_error: ErrorBody | None = None
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.assistant.settings.serve)

    @property
    def settings(self) -> Settings:
        """The assistant's settings."""
        return self.assistant.settings

    def load_model(self) -> None:
        """Load the chat model now, so the first question does not pay for it; a failure is kept, not raised."""
        try:
            self.model_name = self.assistant.chat_model.name
            self.model_error = None
        except ModelError as exc:
            self.model_error = str(exc)

    def record(self, exc: AssistantError | None = None, answer: Answer | None = None) -> None:
        """Track the outcome of an answer: a server-side failure is kept for /healthz, a success clears it."""
        if exc is not None:
            if not exc.server_side:
                return  # the caller's request, not the server's health
            self.last_error = ErrorBody.of(exc)
            if isinstance(exc, ModelError) and not isinstance(exc, BackendUnavailable):
                self.model_error = str(exc)  # a local model that failed to load stays failed
        elif answer is not None:
            self.last_error = None
            if answer.model:
                self.model_name, self.model_error = answer.model, None

    async def answer_events(
        self, question: str, history: list[Turn] | None = None, top_k: int | None = None,
        paper_ids: list[str] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """The assistant's events for a question (a follow-up rewritten to stand alone first): the
        retrieved papers, the tokens, the answer, computed in worker threads and passed on as they are;
        the final answer or a failure is recorded for /healthz."""
        question = rewrite_followup(question, history or [])
        try:
            async for event in stream_events(self.assistant.ask_stream(question, top_k, paper_ids)):
                if event.answer is not None:
                    self.record(answer=event.answer)
                yield event
        except AssistantError as exc:
            self.record(exc)
            raise

    def find_papers(self, query: str | None) -> list[tuple[str, str]]:
        """(id, title) of the indexed papers in title order (kept in memory); with a query, those
        whose title contains all its words."""
        found = self.assistant.papers.titles()
        if query and query.strip():
            words = query.lower().split()
            found = [(pid, title) for pid, title in found if all(w in title.lower() for w in words)]
        return found

    async def probe(self) -> None:
        """Check the remote parts now: the chat server (a TCP connect, which a busy server still
        accepts) and the Chroma server (its heartbeat). A part that comes back is seen at once."""
        settings = self.settings
        timeout = settings.serve.probe_timeout_s
        if settings.llm.backend == "openai" and settings.llm.base_url:
            failure = await _connect_failure(settings.llm.base_url, timeout)
            self.backend_error = None if failure is None else (
                f"chat server at {settings.llm.base_url} unreachable ({failure}); start it or fix "
                "PAPER_ASSISTANT_LLM__BASE_URL")
        if settings.store.kind == "http":
            url = self.assistant.store.location
            failure = await _heartbeat_failure(url + "/api/v2/heartbeat", timeout)
            self.store_error = None if failure is None else (
                f"Chroma server at {url} unreachable ({failure}); start it or fix PAPER_ASSISTANT_STORE__HOST/PORT")

    def health(self) -> Health:
        """The health report, as of the last probe."""
        model_error = self.model_error or self.backend_error
        ready = self.model_name is not None and model_error is None
        index_loaded = bool(self.assistant.papers)
        return Health(
            status="ok" if ready and index_loaded and self.store_error is None else "degraded",
            index_loaded=index_loaded,
            corpus_size=len(self.assistant.papers),
            index_fingerprint=self.assistant.fingerprint,
            model_ready=ready,
            model=self.model_name,
            model_error=model_error,
            store_ready=self.store_error is None,
            store_error=self.store_error,
            last_error=self.last_error,
            pending=self.admission.pending,
            max_pending=self.admission.limit,
        )

    def check_key(self, supplied: str | None) -> bool:
        """True when no key is configured or `supplied` matches it (constant-time)."""
        if self.api_key is None:
            return True
        return supplied is not None and hmac.compare_digest(supplied.encode(), self.api_key.encode())


def _why(exc: BaseException) -> str:
    """An exception as 'Type: message' (just the type when it has no message)."""
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


async def _connect_failure(url: str, timeout_s: float) -> str | None:
    """None when a TCP connection to the URL's host and port opens within the timeout, else why not."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        return _why(exc)
    writer.close()
    return None


async def _heartbeat_failure(url: str, timeout_s: float) -> str | None:
    """None when GET url answers 200 within the timeout, else why not."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return _why(exc)
    return None if response.status_code == 200 else f"heartbeat answered {response.status_code}"


# --------------------------------------------------------------------------- start-up


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the localhost names."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond this machine without an API key."""
    if not api_key and not is_loopback(host):
        raise InputError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could use the model; "
            "set --api-key or PAPER_ASSISTANT_API_KEY, or serve on 127.0.0.1"
        )


def open_runtime(settings: Settings, api_key: str | None = None) -> Runtime:
    """Open the index (filling an empty one from the seeds) and load the chat model once; says so on stderr."""
    assistant = Assistant.from_settings(settings)
    print(f"index {assistant.fingerprint}: {len(assistant.papers)} papers; loading the chat model", file=sys.stderr)
    runtime = Runtime(assistant, api_key=api_key or None)
    runtime.load_model()
    if runtime.model_error:
        print(f"warning: the chat model is not available ({runtime.model_error}); answers will fail with 503",
              file=sys.stderr)
    return runtime
