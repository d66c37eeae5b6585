"""The HTTP answer API (FastAPI, under /v1) over a Runtime: request and response models, middleware, auth, routes.

`create_app(runtime)` builds the API app; `app.py` mounts the chat UI beside it and serves both.
Blocking work (retrieval, generation) runs in the thread pool through the runtime's stream
bridge, so papers, health and docs never wait behind a generation. Every failure reaches the
client as JSON `{"error", "detail"}` (or, once a stream has sent its first event, an SSE `error`
event), never as a traceback; an error's code and status come from its class. Does not answer,
admit or probe by itself (the runtime does) and knows nothing of the UI.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api import StreamEvent
from .errors import AssistantError, InputError, ServerBusy
from .followup import Turn
from .runtime import Admission, ErrorBody, Health, Runtime
from .types import Answer, Paper

API_PREFIX = "/v1"
MAX_HISTORY_TURNS = 50


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


class NoQuery(BaseModel):
    """The query of a route that takes no query parameters: any given is refused."""

    model_config = ConfigDict(extra="forbid")


class PaperQuery(NoQuery):
    """The query of the paper listing."""

    offset: int = Field(0, ge=0, description="Papers to skip.")
    limit: int = Field(50, ge=1, le=500, description="Papers to return.")
    q: str | None = Field(None, max_length=200, description="Only titles containing all these words.")


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


# --------------------------------------------------------------------------- errors


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers)


def error_response(exc: AssistantError) -> JSONResponse:
    """An AssistantError as its JSON response; a busy server says when to retry."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServerBusy) else None
    return _error(exc.status, exc.code, str(exc), headers)


def _query_names(request: Request) -> list[str]:
    """The query parameters the matched route takes."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return []
    names: list[str] = []
    for param in route.dependant.query_params:
        model = param.field_info.annotation
        names += list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else [param.alias]
    return names


def _validation_detail(exc: RequestValidationError, request: Request) -> str:
    parts, unknown = [], []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
        elif err.get("type") == "extra_forbidden" and loc[:1] == ["query"]:
            unknown.append(repr(loc[-1][:40]))
        else:
            where = ".".join(p for p in loc if p not in ("body", "query", "path"))
            parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    if unknown:  # a misspelt `limt` fails loudly instead of being ignored
        names = _query_names(request)
        parts.insert(0, f"unknown query parameter(s) {', '.join(unknown[:5])}; this route takes "
                        f"{', '.join(names) if names else 'none'}")
    return "; ".join(parts[:10]) or "the request is not valid"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_detail(exc, request))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(AssistantError)
    async def on_assistant(request: Request, exc: AssistantError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this response, so the server log gets the traceback; the client does not.
        return _error(500, "internal_error", "unexpected server error; the server log has the details")


# --------------------------------------------------------------------------- auth and query checks


BEARER = HTTPBearer(auto_error=False, description="The server's API key (when it has one).")


def authorize(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    """Dependency of every /v1 route: the bearer token must match the server's API key, if it has one."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.check_key(credentials.credentials if credentials else None):
        raise StarletteHTTPException(
            401, "missing or wrong API key; send `Authorization: Bearer <key>`", headers={"WWW-Authenticate": "Bearer"}
        )


def single_valued(request: Request) -> None:
    """Dependency of every /v1 route: a query parameter given twice is refused (which one would count is a guess)."""
    given = [key for key, _ in request.query_params.multi_items()]
    repeated = sorted({key for key in given if given.count(key) > 1})
    if repeated:
        raise InputError(f"query parameter(s) {', '.join(repeated)} given more than once; give each once")


# --------------------------------------------------------------------------- middleware


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

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        # A body without Content-Length (chunked) is read here, up to the limit, then replayed.
        messages: list[dict[str, Any]] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        detail = f"the request body is over {self.limit} bytes; send a shorter question"
        await _error(413, "payload_too_large", detail)(scope, receive, send)


ANSWER_PATHS = frozenset({f"{API_PREFIX}/answer", f"{API_PREFIX}/answer/stream"})


class AnswerGate:
    """ASGI middleware: each POST to an answer route holds a place in `admission` until its last byte
    is sent (or the client leaves); with every place taken it gets a JSON 503 and Retry-After at once,
    before any work. A 200 that did not end in an SSE `error` event teaches admission how long an answer
    takes. Health, papers and docs never queue."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app, self.admission = app, admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in ANSWER_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            with self.admission.admitted() as ticket:
                status, failed = 0, False

                async def watch(message: dict[str, Any]) -> None:
                    nonlocal status, failed
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    elif message["type"] == "http.response.body":
                        failed = failed or message.get("body", b"").startswith(b"event: error")
                    await send(message)

                await self.app(scope, receive, watch)
                ticket.completed = status == 200 and not failed
        except ServerBusy as exc:
            await error_response(exc)(scope, receive, send)


# --------------------------------------------------------------------------- the app


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return format_sse_event(event=event, data_str=json.dumps(data, ensure_ascii=False))


def _sse_of(event: StreamEvent) -> bytes:
    if event.answer is not None:
        return _sse("answer", event.answer.model_dump(mode="json"))
    if event.sources is not None:
        return _sse("sources", event.sources.model_dump(mode="json"))
    return _sse("token", {"text": event.text})


async def _sse_body(first: StreamEvent | None, events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    """The SSE stream: the first event (already computed), the rest as they come, a failure as an `error` event."""
    try:
        if first is not None:
            yield _sse_of(first)
        async for event in events:
            yield _sse_of(event)
    except AssistantError as exc:
        yield _sse("error", ErrorBody.of(exc).model_dump())
    except Exception as exc:  # noqa: BLE001 - the stream must end with an event, not a dropped connection
        traceback.print_exception(exc, file=sys.stderr)
        yield _sse("error", {"error": "internal_error", "detail": "unexpected server error; see the server log"})


def create_app(runtime: Runtime) -> FastAPI:
    """The FastAPI app over `runtime`: /v1 API, /healthz and /docs."""
    from fastapi_offline import FastAPIOffline  # Swagger UI served from the package, not a CDN

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
    limit = runtime.settings.serve.max_body_bytes
    app.add_middleware(AnswerGate, admission=runtime.admission)
    app.add_middleware(BodyLimit, limit=limit)
    app.add_middleware(NoSniff)
    _install_error_handlers(app)
    guarded = [Depends(authorize), Depends(single_valued)]
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody, "description": "The body could not be read (not UTF-8 JSON)."},
        401: {"model": ErrorBody, "description": "Missing or wrong API key."},
        413: {"model": ErrorBody, "description": f"The body is over {limit} bytes."},
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

    @app.post(f"{API_PREFIX}/answer", response_model=Answer, tags=["answers"], responses=errors, dependencies=guarded)
    async def answer(body: AnswerRequest, request: Request, _: Annotated[NoQuery, Query()]) -> Answer | JSONResponse:
        """Answer a question, citing the papers used; abstains when the papers do not cover it."""
        events = runtime.answer_events(body.question, body.history, body.top_k, body.paper_ids)
        async with aclosing(events):  # leaving early closes the generation, freeing the model
            async for event in events:
                if event.answer is not None:
                    return event.answer
                if await request.is_disconnected():
                    break  # nobody is waiting for this answer
        return _error(499, "client_closed", "the client left before the answer was complete")

    @app.post(
        f"{API_PREFIX}/answer/stream",
        tags=["answers"],
        dependencies=guarded,
        responses={
            **errors,
            200: {
                "content": {"text/event-stream": {}},
                "description": "Server-Sent Events, in this order: one `sources` event {passages} with the "
                "retrieved papers (best first, as the answer's `passages` will hold them), sent before the model "
                "starts; `token` events {text}; one `answer` event with the answer object. A question refused at "
                "retrieval (nothing close enough) gets the `answer` event alone. A failure after the stream "
                "started (the model, its server or a timeout during generation) ends it with an `error` event "
                "{error, detail} with the codes and details listed under 503 and 504.",
            },
        },
    )
    async def answer_stream(body: AnswerRequest, _: Annotated[NoQuery, Query()]) -> EventSourceResponse:
        """Stream the retrieved papers, then the answer, as Server-Sent Events.

        Errors before the first event (bad input, unknown paper ids, the vector store down) are plain
        JSON errors with their status; errors during generation are `error` events on the stream."""
        events = runtime.answer_events(body.question, body.history, body.top_k, body.paper_ids)
        # Retrieval happens here, so bad input still gets a proper status code; the first event is the
        # sources (or a refusal), so the response starts before the model does.
        first = await anext(events, None)
        return EventSourceResponse(_sse_body(first, events), headers={"Cache-Control": "no-cache",
                                                                      "X-Accel-Buffering": "no"})

    @app.get(f"{API_PREFIX}/papers", response_model=PaperPage, tags=["papers"],
             responses={401: errors[401], 422: errors[422]}, dependencies=guarded)
    async def papers(query: Annotated[PaperQuery, Query()]) -> PaperPage:
        """Indexed papers (id and title), sorted by title, with paging and a title search."""
        found = runtime.find_papers(query.q)
        page = [PaperSummary(id=pid, title=title) for pid, title in found[query.offset : query.offset + query.limit]]
        return PaperPage(total=len(found), offset=query.offset, limit=query.limit, items=page)

    @app.get(f"{API_PREFIX}/papers/{{paper_id}}", response_model=Paper, tags=["papers"],
             responses={401: errors[401], 404: {"model": ErrorBody}, 422: errors[422]}, dependencies=guarded)
    async def paper(paper_id: str, _: Annotated[NoQuery, Query()]) -> Paper:
        """The full record of one paper."""
        found = runtime.assistant.papers.get(paper_id)
        if found is None:
            raise StarletteHTTPException(404, f"no paper with id {paper_id!r}; list ids with GET {API_PREFIX}/papers")
        return found

    return app
