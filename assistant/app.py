"""The served app: the HTTP API (server.py) and the chat UI (ui.py) over one Runtime, in one process.

The only module that imports both faces; they share the runtime, never each other. `compose`
builds the app (tests serve it in a thread); `serve` opens the runtime and runs uvicorn.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

from .config import Settings
from .runtime import Runtime, check_exposure, open_runtime
from .server import API_PREFIX, create_app
from .ui import mount_ui


def compose(runtime: Runtime, ui: bool = True) -> FastAPI:
    """The API at /v1, /healthz and /docs, and (ui=True) the chat UI at `/`."""
    app = create_app(runtime)
    if ui:
        mount_ui(app, runtime, api_path=API_PREFIX)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, api_key: str | None = None) -> None:
    """Open the index, load the model once, and serve the UI at / and the API at /v1 until interrupted."""
    import uvicorn

    check_exposure(host, api_key)
    app = compose(open_runtime(settings, api_key))
    shown = f"[{host}]" if ":" in host else host
    print(f"serving the chat UI at http://{shown}:{port}/ and the API at http://{shown}:{port}{API_PREFIX} "
          f"(docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
