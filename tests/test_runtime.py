"""The runtime's own logic: admission (one path for HTTP and chat, learning how long an answer takes)
and the sync-to-async stream bridge (closing early frees the generation). The faces over it are
tested through HTTP (test_http.py) and the browser (test_ui.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import nullcontext

import pytest

from assistant.api import StreamEvent
from assistant.config import ServeSettings
from assistant.errors import InputError, ServerBusy
from assistant.runtime import Admission, check_exposure, stream_events


def test_admission_bounds_the_answers_in_flight_and_says_when_to_retry() -> None:
    admission = Admission(ServeSettings(max_pending=2, retry_after_initial_s=15.0))
    with admission.admitted(), admission.admitted():
        assert admission.pending == 2
        with pytest.raises(ServerBusy) as busy, admission.admitted():
            pass
        assert busy.value.retry_after_s == 8  # ceil(15 s / 2 places)
        assert busy.value.code == "server_busy" and busy.value.status == 503
    assert admission.pending == 0


@pytest.mark.parametrize(
    ("completed", "raises", "typical_s"),
    [(True, False, 0.7 * 15.0), (False, False, 15.0), (False, True, 15.0)],
)
def test_only_a_completed_answer_teaches_the_typical_time(completed: bool, raises: bool, typical_s: float) -> None:
    admission = Admission(ServeSettings(max_pending=4))  # starts at 15 s; keeps 0.7 of it per answer
    with pytest.raises(RuntimeError) if raises else nullcontext(), admission.admitted() as ticket:
        ticket.completed = completed  # an answer that took (almost) no time
        if raises:
            raise RuntimeError("the client left")
    assert admission.pending == 0
    assert admission.typical_s == pytest.approx(typical_s, abs=1e-3)


@pytest.mark.parametrize(("typical_s", "limit", "expected"), [(0.1, 8, 1), (15.0, 8, 2), (10_000.0, 1, 300)])
def test_retry_after_is_between_one_second_and_the_cap(typical_s: float, limit: int, expected: int) -> None:
    admission = Admission(ServeSettings(max_pending=limit, retry_after_max_s=300))
    admission.typical_s = typical_s
    assert admission.retry_after_s() == expected


def test_leaving_the_stream_early_closes_the_generation() -> None:
    closed = threading.Event()

    def generation() -> Iterator[StreamEvent]:
        try:
            for word in ("one ", "two ", "three "):
                yield StreamEvent("token", text=word)
        finally:
            closed.set()  # where the real generator releases the model's lock

    async def first_token() -> str:
        events = stream_events(generation())
        async for event in events:
            await events.aclose()
            return event.text
        return ""

    assert asyncio.run(first_token()) == "one "
    assert closed.wait(10)


def test_a_failure_in_the_generation_reaches_the_reader() -> None:
    def generation() -> Iterator[StreamEvent]:
        yield StreamEvent("token", text="one ")
        raise InputError("unknown paper id(s): x")

    async def read() -> list[str]:
        seen = []
        async for event in stream_events(generation()):
            seen.append(event.text)
        return seen

    with pytest.raises(InputError, match="unknown paper"):
        asyncio.run(read())


def test_serving_beyond_loopback_needs_a_key() -> None:
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "key")
    with pytest.raises(InputError, match="without an API key"):
        check_exposure("0.0.0.0", None)


@pytest.mark.parametrize(("last_event", "typical_s"), [(b"event: answer\ndata: {}\n\n", 0.7 * 15.0),
                                                       (b"event: error\ndata: {}\n\n", 15.0)])
def test_a_stream_that_ends_in_an_error_event_teaches_admission_nothing(last_event: bytes, typical_s: float) -> None:
    from assistant.server import API_PREFIX, AnswerGate

    async def stream(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        for body in (b"event: sources\ndata: {}\n\n", last_event):
            await send({"type": "http.response.body", "body": body, "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # type: ignore[operator]

    async def ignore(message: dict) -> None:  # type: ignore[type-arg]
        pass

    admission = Admission(ServeSettings(max_pending=4))
    scope = {"type": "http", "method": "POST", "path": f"{API_PREFIX}/answer/stream"}
    asyncio.run(AnswerGate(stream, admission)(scope, None, ignore))
    assert admission.typical_s == pytest.approx(typical_s, abs=1e-3)
