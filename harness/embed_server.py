"""A real OpenAI-compatible embeddings server on a free loopback port: llama-cpp-python's server
over the packaged GGUF with embeddings on, for tests and benchmarks.

The packaged chat model's GGUF records no pooling type, so llama.cpp would return one vector per
token; the GGUF key `qwen2.pooling_type` is overridden to mean pooling (1), which gives one vector
per text through `/v1/embeddings`. Stopped like every server of harness/servers.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .servers import LLAMA_START_TIMEOUT_S, Server, _status_ok, free_port, start

EMBED_ALIAS = "qwen2.5-coder-1.5b-embed"
MEAN_POOLING = "qwen2.pooling_type=int:1"


def start_embedding_server(model_path: Path, log_dir: Path, n_threads: int = 2, port: int | None = None) -> Server:
    """llama_cpp.server with `--embedding true` and mean pooling; ready when /v1/models answers.

    `Server.name` is set to the model alias, which is the name to send as the embedding model."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", EMBED_ALIAS,
           "--embedding", "true", "--kv_overrides", MEAN_POOLING, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_batch", "2048", "--n_ubatch", "2048", "--n_threads", str(n_threads),
           "--verbose", "False"]
    server = start("llama-embed-server", cmd, port, log_dir, _status_ok("/v1/models"), LLAMA_START_TIMEOUT_S)
    server.name = EMBED_ALIAS
    return server
