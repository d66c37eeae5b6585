"""The HTTP answer API (FastAPI, under /v1) with the Gradio chat UI mounted at `/`, in one process.

`create_app(assistant)` builds the app over an Assistant whose index is already open;
`serve()` opens the index, loads the chat model once and runs uvicorn. Blocking work (retrieval,
generation) runs in the thread pool, so papers, health and docs never wait behind a generation;
the single local model serialises generations with its own lock. Every failure reaches the client
as JSON `{"error", "detail"}` (or an SSE `error` event mid-stream), never as a traceback.
Also holds the follow-up rewriting shared by the UI and the HTTP `history` field.
Does not build prompts or render HTML (ui.py does).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import re
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api import Assistant, StreamEvent
from .config import Settings
from .errors import AssistantError, BackendTimeout, BackendUnavailable, InputError, ModelError, ServerBusy, StoreError
from .types import Answer, Paper

API_PREFIX = "/v1"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
MAX_HISTORY_TURNS = 50
CONTEXT_TITLES = 2  # titles of the previous answer prepended to a follow-up


# --------------------------------------------------------------------------- follow-up questions


class CitedPaper(BaseModel):
    """A paper an earlier answer cited; only the title is needed (extra fields are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    title: str
    paper_id: str = ""


class Turn(BaseModel):
    """One earlier exchange of a conversation. An Answer object from this API is a valid Turn."""

    model_config = ConfigDict(extra="ignore", strict=True)

    question: str = Field(description="The question as it was answered (an Answer's `question`).")
    answer: str = Field("", description="The answer text.")
    citations: list[CitedPaper] = Field(default_factory=list, description="Papers the answer cited.")


_WORD = re.compile(r"[a-z0-9']+")
_OPENER = re.compile(r"^\s*(?:and|also|but|so|then|ok(?:ay)?)\b[\s,]*", re.IGNORECASE)  # dropped from the rewrite
_FOLLOWUP_START = re.compile(r"^\s*(?:and|also|but|so|then|ok(?:ay)?|what about|how about)\b", re.IGNORECASE)
_REGARDING = re.compile(r'^Regarding (?:"[^"]*"(?:, "[^"]*")*|the question "[^"]*"): ', re.DOTALL)
_PRONOUNS = frozenset((
    "they", "them", "their", "theirs", "it", "its", "this", "that", "these", "those",
    "he", "she", "his", "her", "there", "such", "same", "former", "latter",
))
_REFERRING = ("the paper", "the papers", "the authors", "the model", "the models", "the method", "the approach",
              "the dataset", "the study", "this work", "the work", "the results", "the benchmark")
_SHORT_WORDS = 3  # a question this short cannot stand alone
_FOLLOWUP_WORDS = 12  # longer questions with a pronoun usually name their subject themselves


def _names_a_subject(question: str) -> bool:
    # A capitalised or numbered term after the first word: "What is FooNet?", "Results on WMT14?"
    return any(t[0].isupper() or any(c.isdigit() for c in t) for t in question.split()[1:] if t[:1].isalnum())


def is_followup(question: str) -> bool:
    """True when the question leans on the conversation ("and what dataset did they use?")."""
    low = question.lower()
    words = _WORD.findall(low)
    if _FOLLOWUP_START.match(question):
        return True
    if len(words) <= _SHORT_WORDS:
        return not _names_a_subject(question)
    if len(words) > _FOLLOWUP_WORDS:
        return False
    return bool(_PRONOUNS.intersection(words)) or any(phrase in low for phrase in _REFERRING)


def rewrite_followup(question: str, history: list[Turn]) -> str:
    """A standalone question: a follow-up gets the papers cited in the last answer (or the last question) as subject.

    Deterministic on purpose: the rewrite is shown to the user and repeatable in tests, and costs no
    generation on a CPU-bound box. Questions that stand alone come back unchanged.
    """
    question = question.strip()
    if not history or not question or not is_followup(question):
        return question
    body = _OPENER.sub("", question).strip() or question
    body = body[0].upper() + body[1:]
    titles: list[str] = []
    for turn in reversed(history):  # the latest turn that cited papers names the subject
        titles = list(dict.fromkeys(c.title.strip() for c in turn.citations if c.title.strip()))
        if titles:
            break
    if titles:
        subject = ", ".join(f'"{t}"' for t in titles[:CONTEXT_TITLES])
    else:
        previous = _REGARDING.sub("", history[-1].question).strip()
        subject = f'the question "{previous}"'
    return f"Regarding {subject}: {body}"


# --------------------------------------------------------------------------- request/response bodies


class AnswerRequest(BaseModel):
    """A question, optionally restricted to some papers, optionally following earlier turns."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1, 3.0 is not 3

    question: str = Field(description="The question; a longer one than `max_question_tokens` is answered from its end.")
    paper_ids: list[str] | None = Field(None, description="Search only these papers (ids from GET /v1/papers).")
    top_k: int | None = Field(None, ge=1, le=50, description="Papers to retrieve; default from the settings.")
    history: list[Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_TURNS,
        description="Earlier turns, oldest first (earlier Answer objects work as they are). A follow-up "
        "question is rewritten into a standalone one, which the answer's `question` field then shows.",
    )


class ErrorBody(BaseModel):
    """Every error the API returns."""

    error: str = Field(description="A machine-readable code, e.g. invalid_request, model_unavailable.")
    detail: str = Field(description="What went wrong and what to change.")


class PaperSummary(BaseModel):
    """A paper in a listing."""

    id: str
    title: str


class PaperPage(BaseModel):
    """One page of the paper listing, sorted by title."""

    total: int = Field(description="Papers matching the search (all pages).")
    offset: int
    limit: int
    items: list[PaperSummary]


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


# --------------------------------------------------------------------------- errors


# Subclasses before their parents: the first class that matches decides.
_ERROR_STATUS: tuple[tuple[type[AssistantError], int, str], ...] = (
    (InputError, 422, "invalid_request"),
    (ServerBusy, 503, "server_busy"),
    (BackendTimeout, 504, "backend_timeout"),
    (BackendUnavailable, 503, "backend_unavailable"),
    (ModelError, 503, "model_unavailable"),
    (StoreError, 503, "store_unavailable"),
)


def error_status(exc: AssistantError) -> tuple[int, str]:
    """HTTP status and error code for an AssistantError."""
    return next(((status, code) for cls, status, code in _ERROR_STATUS if isinstance(exc, cls)), (500, "internal_error"))


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers)


def _retry_headers(exc: AssistantError) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServerBusy) else None


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts[:10]) or "the request is not valid"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(AssistantError)
    async def on_assistant(request: Request, exc: AssistantError) -> JSONResponse:
        status, code = error_status(exc)
        return _error(status, code, str(exc), headers=_retry_headers(exc))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this response, so the server log gets the traceback; the client does not.
        return _error(500, "internal_error", "unexpected server error; the server log has the details")


# --------------------------------------------------------------------------- runtime


class Admission:
    """Bounds the answer requests in flight (generating, or waiting for the one local model).

    Used from the event loop only, so plain counters suffice. Retry-After is the time one place
    takes to free up: the recent time an accepted request took from arrival to its last byte
    (a moving average, so it includes the wait), divided by the places.
    """

    def __init__(self, limit: int, typical_s: float = 15.0) -> None:
        self.limit = limit
        self.pending = 0
        self.typical_s = typical_s

    def enter(self) -> None:
        """Take a place, or raise ServerBusy when all are taken."""
        if self.pending >= self.limit:
            raise ServerBusy(self.pending, self.retry_after_s())
        self.pending += 1

    def leave(self, seconds: float | None = None) -> None:
        """Give the place back; `seconds` (for a completed answer) updates the typical time."""
        self.pending -= 1
        if seconds is not None:
            self.typical_s = 0.7 * self.typical_s + 0.3 * seconds

    def retry_after_s(self) -> int:
        """Seconds until a place is likely to free up, at least 1."""
        return max(1, min(300, math.ceil(self.typical_s / self.limit)))


@dataclass
class Runtime:
    """What the app serves: the assistant, the API key, admission, and the state of model, backend and store."""

    assistant: Assistant
    api_key: str | None = None
    model_name: str | None = None
    model_error: str | None = None
    backend_error: str | None = None
    store_error: str | None = None
    last_error: ErrorBody | None = None
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.assistant.settings.serve.max_pending)

    def load_model(self) -> None:
        """Load the chat model now, so the first question does not pay for it; a failure is kept, not raised."""
        try:
            self.model_name = self.assistant.chat_model.name
            self.model_error = None
        except ModelError as exc:
            self.model_error = str(exc)

    def record(self, exc: AssistantError | None = None, answer: Answer | None = None) -> None:
        """Track the outcome of an answer: a server-side failure is kept for /healthz, a success clears it."""
        if isinstance(exc, (InputError, ServerBusy)):
            return  # the caller's request, not the server's health
        if exc is not None:
            _, code = error_status(exc)
            self.last_error = ErrorBody(error=code, detail=str(exc))
            if isinstance(exc, ModelError) and not isinstance(exc, BackendUnavailable):
                self.model_error = str(exc)  # a local model that failed to load stays failed
        elif answer is not None:
            self.last_error = None
            if answer.model:
                self.model_name, self.model_error = answer.model, None

    async def probe(self) -> None:
        """Check the remote parts now: the chat server (a TCP connect, which a busy server still
        accepts) and the Chroma server (its heartbeat). A part that comes back is seen at once."""
        settings = self.assistant.settings
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


class _Done(Exception):
    """The event iterator is exhausted (StopIteration cannot cross a thread boundary)."""


class _Steps:
    """Steps a sync event iterator in worker threads; a guard keeps `close` from racing a running step."""

    def __init__(self, events: Iterator[StreamEvent]) -> None:
        self.events = events
        self.guard = threading.Lock()

    def step(self) -> StreamEvent:
        with self.guard:
            try:
                return next(self.events)
            except StopIteration:
                raise _Done from None

    def close(self) -> None:
        with self.guard:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()  # runs the generator's `finally`/`with lock:` exits, freeing the model


async def next_event(events: Iterator[StreamEvent]) -> StreamEvent | None:
    """The next event, computed in a worker thread; None at the end."""
    try:
        return await anyio.to_thread.run_sync(_Steps(events).step)
    except _Done:
        return None


async def stream_events(events: Iterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    """Iterate `ask_stream` off the event loop; ending early (client gone, Stop) closes it, releasing the model.

    A cancelled await can leave a step running in its thread (Gradio cancels the task outright), so
    the close then waits for that step in a thread of its own instead of failing with "generator
    already executing".
    """
    steps = _Steps(events)
    try:
        while True:
            try:
                event = await anyio.to_thread.run_sync(steps.step)
            except _Done:
                return
            yield event
    finally:
        if steps.guard.acquire(blocking=False):
            steps.guard.release()
            steps.close()
        else:
            threading.Thread(target=steps.close, name="close-answer-stream", daemon=True).start()


BEARER = HTTPBearer(auto_error=False, description="The server's API key (when it has one).")


def authorize(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    """Dependency of every /v1 route: the bearer token must match the server's API key, if it has one."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.check_key(credentials.credentials if credentials else None):
        raise StarletteHTTPException(
            401, "missing or wrong API key; send `Authorization: Bearer <key>`", headers={"WWW-Authenticate": "Bearer"}
        )


def takes_query(*names: str) -> Any:
    """Dependency refusing query parameters the route does not take (a misspelt `limt` fails loudly)
    and parameters given more than once (which one would count is a guess)."""
    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            shown = ", ".join(repr(n[:40]) for n in unknown[:5])
            raise InputError(f"unknown query parameter(s) {shown}; this route takes "
                             f"{', '.join(names) if names else 'none'}")
        given = [key for key, _ in request.query_params.multi_items()]
        repeated = sorted({key for key in given if given.count(key) > 1})
        if repeated:
            raise InputError(f"query parameter(s) {', '.join(repeated)} given more than once; give each once")
    return Depends(check)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# --------------------------------------------------------------------------- the app


def standalone_question(body: AnswerRequest) -> str:
    """The request's question, rewritten to stand alone when it follows earlier turns."""
    return rewrite_followup(body.question, body.history) if body.history else body.question


MAX_BODY_BYTES = 256 * 1024  # a question is at most a few hundred tokens; 50 turns of history fit easily


class NoSniff:
    """ASGI middleware: every response says `X-Content-Type-Options: nosniff`, so a browser never
    reads JSON holding an abstract's `<script>` as a page."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def marked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, marked if scope["type"] == "http" else send)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets a JSON 413 before the app reads it."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # A body without Content-Length (chunked) is read here, up to the limit, then replayed.
        messages: list[dict[str, Any]] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        await _send_json(send, 413, {"error": "payload_too_large",
                                     "detail": f"the request body is over {self.limit} bytes; send a shorter question"})


ANSWER_PATHS = frozenset({f"{API_PREFIX}/answer", f"{API_PREFIX}/answer/stream"})


class AnswerGate:
    """ASGI middleware: each POST to an answer route holds a place in `admission` until its last byte
    is sent (or the client leaves); with every place taken it gets a JSON 503 and Retry-After at once,
    before any work. Health, papers and docs never queue."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app, self.admission = app, admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ANSWER_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            self.admission.enter()
        except ServerBusy as exc:
            status, code = error_status(exc)
            await _send_json(send, status, ErrorBody(error=code, detail=str(exc)).model_dump(), _retry_headers(exc))
            return
        started = time.perf_counter()
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.admission.leave(time.perf_counter() - started if status == 200 else None)


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """A JSON response straight from ASGI middleware, before the app runs."""
    data = json.dumps(body).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": data})


def create_app(assistant: Assistant, api_key: str | None = None, ui: bool = True, load_model: bool = True) -> FastAPI:
    """The FastAPI app: /v1 API, /healthz, /docs, and (ui=True) the Gradio chat UI at `/`."""
    from fastapi_offline import FastAPIOffline  # Swagger UI served from the package, not a CDN

    runtime = Runtime(assistant, api_key=api_key or None)
    if load_model:
        runtime.load_model()
    app = FastAPIOffline(
        title="paper-assistant",
        description="Answers questions over research-paper abstracts, citing the papers it used. "
        "Errors are JSON objects {error, detail}. When the server has an API key, send it as "
        "`Authorization: Bearer <key>`.",
        version="1",
        redoc_url=None,
        static_url="/docs-static",
    )
    app.state.runtime = runtime
    app.add_middleware(AnswerGate, admission=runtime.admission)
    app.add_middleware(BodyLimit)
    app.add_middleware(NoSniff)
    _install_error_handlers(app)
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8 JSON)."},
        401: {"model": ErrorBody, "description": "Missing or wrong API key."},
        413: {"model": ErrorBody, "description": f"The body is over {MAX_BODY_BYTES} bytes."},
        422: {"model": ErrorBody, "description": "Invalid request: empty question, unknown paper id, wrong types."},
        503: {"model": ErrorBody, "description": "Busy (error `server_busy`, with a Retry-After header), or the chat "
              "model, its server or the vector store is not available."},
        504: {"model": ErrorBody, "description": "The chat server did not answer in time (error `backend_timeout`)."},
    }

    @app.get("/healthz", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    async def healthz() -> JSONResponse:
        """Index, model, chat server and vector store, checked now. 200 when able to answer, else 503 with the reason."""
        await runtime.probe()
        report = runtime.health()
        return JSONResponse(report.model_dump(), status_code=200 if report.status == "ok" else 503)

    @app.post(f"{API_PREFIX}/answer", response_model=Answer, tags=["answers"], responses=errors,
              dependencies=[Depends(authorize), takes_query()])
    async def answer(body: AnswerRequest, request: Request) -> Answer | JSONResponse:
        """Answer a question, citing the papers used; abstains when the papers do not cover it."""
        question = standalone_question(body)
        final: Answer | None = None
        try:
            events = runtime.assistant.ask_stream(question, body.top_k, body.paper_ids)
            async for event in stream_events(events):
                if event.answer is not None:
                    final = event.answer
                elif await request.is_disconnected():
                    break  # nobody is waiting for this answer: leaving the loop closes it and frees the model
        except AssistantError as exc:
            runtime.record(exc)
            raise
        if final is None:
            return _error(499, "client_closed", "the client left before the answer was complete")
        runtime.record(answer=final)
        return final

    @app.post(
        f"{API_PREFIX}/answer/stream",
        tags=["answers"],
        dependencies=[Depends(authorize), takes_query()],
        responses={
            **errors,
            200: {
                "content": {"text/event-stream": {}},
                "description": "Server-Sent Events: `token` events {text}, then one `answer` event with the "
                "answer object; a failure after the stream started is an `error` event {error, detail}.",
            },
        },
    )
    async def answer_stream(body: AnswerRequest) -> Any:
        """Stream the answer as Server-Sent Events. Errors before the first event are plain JSON errors."""
        question = standalone_question(body)
        events = runtime.assistant.ask_stream(question, body.top_k, body.paper_ids)
        try:  # retrieval and the first token happen here, so bad input still gets a proper status code
            first = await next_event(events)
        except AssistantError as exc:
            runtime.record(exc)
            raise
        return StreamingResponse(
            _sse_body(first, events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _sse_body(first: StreamEvent | None, events: Iterator[StreamEvent]) -> AsyncIterator[str]:
        try:
            if first is not None:
                yield _event_text(first)
            async for event in stream_events(events):
                yield _event_text(event)
        except AssistantError as exc:
            runtime.record(exc)
            _, code = error_status(exc)
            yield _sse("error", {"error": code, "detail": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the stream must end with an event, not a dropped connection
            traceback.print_exception(exc, file=sys.stderr)
            yield _sse("error", {"error": "internal_error", "detail": "unexpected server error; see the server log"})

    def _event_text(event: StreamEvent) -> str:
        if event.kind == "answer" and event.answer is not None:
            runtime.record(answer=event.answer)
            return _sse("answer", event.answer.model_dump(mode="json"))
        return _sse("token", {"text": event.text})

    @app.get(f"{API_PREFIX}/papers", response_model=PaperPage, tags=["papers"],
             responses={401: errors[401], 422: errors[422]},
             dependencies=[Depends(authorize), takes_query("offset", "limit", "q")])
    async def papers(
        offset: int = Query(0, ge=0, description="Papers to skip."),
        limit: int = Query(50, ge=1, le=500, description="Papers to return."),
        q: str | None = Query(None, max_length=200, description="Only titles containing all these words."),
    ) -> PaperPage:
        """Indexed papers (id and title), sorted by title, with paging and a title search."""
        found = runtime.assistant.papers.titles()  # (id, title) in title order, kept in memory
        if q and q.strip():
            words = q.lower().split()
            found = [(pid, title) for pid, title in found if all(w in title.lower() for w in words)]
        page = [PaperSummary(id=pid, title=title) for pid, title in found[offset : offset + limit]]
        return PaperPage(total=len(found), offset=offset, limit=limit, items=page)

    @app.get(f"{API_PREFIX}/papers/{{paper_id}}", response_model=Paper, tags=["papers"],
             responses={401: errors[401], 404: {"model": ErrorBody}, 422: errors[422]},
             dependencies=[Depends(authorize), takes_query()])
    async def paper(paper_id: str) -> Paper:
        """The full record of one paper."""
        found = runtime.assistant.papers.get(paper_id)
        if found is None:
            raise StarletteHTTPException(404, f"no paper with id {paper_id!r}; list ids with GET {API_PREFIX}/papers")
        return found

    if ui:
        from .ui import mount_ui

        mount_ui(app, runtime)
    return app


# --------------------------------------------------------------------------- serve


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


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, api_key: str | None = None) -> None:
    """Open the index, load the model once, and serve the UI at / and the API at /v1 until interrupted."""
    import uvicorn

    check_exposure(host, api_key)
    assistant = Assistant.from_settings(settings)
    print(f"index {assistant.fingerprint}: {len(assistant.papers)} papers; loading the chat model", file=sys.stderr)
    app = create_app(assistant, api_key=api_key)
    runtime: Runtime = app.state.runtime
    if runtime.model_error:
        print(f"warning: the chat model is not available ({runtime.model_error}); answers will fail with 503",
              file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving the chat UI at http://{shown}:{port}/ and the API at http://{shown}:{port}{API_PREFIX} "
          f"(docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
