"""One root error; every message says what the user should change. The CLI prints it on one line.

Each class carries the machine-readable `code` and the HTTP `status` every face reports it with
(the HTTP API, the chat UI's wording, `/healthz`'s `last_error`), so no face keeps its own table.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Root of every error paper-assistant raises on purpose."""

    code = "internal_error"
    status = 500
    server_side = True  # a failure of the server's parts (kept for /healthz), not of the caller's request


class InputError(AssistantError):
    """The question or request is unusable as given."""

    code = "invalid_request"
    status = 422
    server_side = False


class ServerBusy(AssistantError):
    """Too many answers are already generating or waiting; the caller should retry after `retry_after_s`."""

    code = "server_busy"
    status = 503
    server_side = False

    def __init__(self, pending: int, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"the server is busy with {pending} answer(s) generating or waiting; "
                         f"retry in {retry_after_s} s")


class CorpusError(AssistantError):
    """A corpus file is missing, unreadable or malformed; carries every problem found."""

    code = "invalid_corpus"
    status = 422
    server_side = False

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(shown)


class ModelError(AssistantError):
    """The model file is missing or corrupt, or the backend cannot be reached."""

    code = "model_unavailable"
    status = 503


class BackendUnavailable(ModelError):
    """The chat backend did not answer (down, timed out, or refused)."""

    code = "backend_unavailable"


class BackendTimeout(BackendUnavailable):
    """The chat backend accepted the request but did not answer in time."""

    code = "backend_timeout"
    status = 504


class StoreError(AssistantError):
    """The vector store cannot be opened or is out of date."""

    code = "store_unavailable"
    status = 503
