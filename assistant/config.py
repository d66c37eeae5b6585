"""One Settings object for the whole assistant, read from PAPER_ASSISTANT_* env vars.

Nested groups use a double underscore: PAPER_ASSISTANT_LLM__BASE_URL=http://127.0.0.1:8000/v1.
Each field's description is its documentation (`paper-assistant config` prints them).
Nothing here is a global: callers build a Settings and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .bundled import seed_paths


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "paper-assistant"


class CorpusSettings(BaseModel):
    """Where the corpus comes from when nothing else is given."""

    seed_paths: list[Path] = Field(
        default_factory=seed_paths,
        description="Corpus files ingested on first start (seed listing .txt or .jsonl of {title, abstract}); "
        "default: the seed corpus that ships inside the package.",
    )


class ChunkSettings(BaseModel):
    """How abstracts are cut into retrieval chunks."""

    max_tokens: int = Field(200, ge=32, description="Token budget per chunk (tiktoken count).")
    overlap_sentences: int = Field(1, ge=0, description="Sentences repeated at the start of the next chunk.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")


class EmbedSettings(BaseModel):
    """The embedding model: the packaged int8 ONNX MiniLM, or any OpenAI-compatible /v1/embeddings server.

    Corpus and questions always go through the same one. Its model name and vector size are part
    of the index fingerprint, so switching embedders builds a new collection and keeps the old one.
    """

    backend: Literal["local", "openai"] = Field(
        "local", description="'local' runs the packaged MiniLM in-process; 'openai' sends texts to base_url."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible embeddings endpoint, e.g. http://127.0.0.1:8081/v1 (TEI, vLLM, "
        "Ollama, llama.cpp's server, OpenAI)."
    )
    model: str | None = Field(None, description="Embedding model name sent to the server (backend 'openai').")
    api_key: SecretStr = Field(SecretStr("not-needed"), description="Key for the embeddings server (never printed).")
    dimensions: int | None = Field(
        None, ge=1, description="Vector size to ask the server for (models that can shorten theirs, such as "
        "text-embedding-3-*); default: the model's own."
    )
    batch_size: int = Field(32, ge=1, description="Texts per ONNX call (local) or per request (server).")
    threads: int = Field(0, ge=0, description="ONNX intra-op threads; 0 lets onnxruntime decide.")
    timeout_s: float = Field(60.0, gt=0, description="Server backend: seconds to wait for one embeddings request.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Server backend: retries of a refused, failed or timed-out request, with backoff."
    )


class StoreSettings(BaseModel):
    """The Chroma vector store: embedded on disk, or a Chroma server."""

    kind: Literal["persistent", "http"] = Field(
        "persistent", description="'persistent' keeps Chroma in a folder; 'http' talks to a `chroma run` server."
    )
    path: Path | None = Field(None, description="Folder of the embedded store; default <data_dir>/chroma.")
    host: str = Field("127.0.0.1", description="Chroma server host (kind=http).")
    port: int = Field(8000, description="Chroma server port (kind=http).")
    collection_prefix: str = Field("papers", description="Collection names are <prefix>-<fingerprint>.")
    ingest_batch: int = Field(
        256, ge=1, description="Papers per ingest batch (one lookup, one embed call, one write each); bounds ingest memory."
    )
    search_breadth: int = Field(
        500, ge=10, description="Chroma's HNSW `ef_search` for the chunks collection, set at open: how widely a "
        "dense search looks. Chroma's default (100) missed a question's nearest chunk in some processes."
    )


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: dense + BM25, fused by reciprocal rank."""

    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="'hybrid' fuses dense and BM25; 'dense' or 'bm25' uses one retriever (eval baselines)."
    )
    top_k: int = Field(3, ge=1, le=50, description="Papers handed to the answerer.")
    candidates: int = Field(20, ge=1, description="Chunks taken from each retriever before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    min_dense_score: float = Field(
        0.30, description="Abstain when no retrieved chunk reaches this cosine similarity to the question."
    )
    split_question: bool = Field(
        True, description="Also search each sentence of a question of several on its own (best match counts)."
    )
    passage_tokens: int = Field(
        80, ge=20, description="Token budget per paper (twice that for the top paper): its most relevant sentences."
    )
    lexical_weight: float = Field(
        0.5, ge=0, description="Evidence: how much question-word overlap adds to a sentence's cosine."
    )
    number_bonus: float = Field(0.1, ge=0, description="Evidence: added for a sentence with a figure.")
    quantity_bonus: float = Field(
        0.3, ge=0, description="Evidence: added instead for a sentence with a figure when the question asks for a quantity."
    )
    unit_bonus: float = Field(
        0.3, ge=0, description="Evidence: added when a figure is followed by the unit the question asks about."
    )
    context_tokens: int = Field(500, ge=50, description="Token budget for all passages packed into the prompt.")
    list_candidates: int = Field(
        12, ge=1, le=100, description="Papers judged one by one for a question that asks which papers fit."
    )
    list_min_fit: float = Field(
        0.35, ge=0.0, le=1.0, description="How well an abstract must match what a list question asks for to be listed."
    )
    list_max_items: int = Field(4, ge=1, le=50, description="Papers a list answer shows at most.")


class SupportSettings(BaseModel):
    """How a claim's support by an abstract is scored (tuned on the dev split; see evals/README.md)."""

    cosine_floor: float = Field(
        0.35, ge=0.0, le=1.0, description="Sentence cosine that counts as no support (MiniLM cosines below about "
        "0.35 are unrelated text); the same scale places abstracts in list answers."
    )
    cosine_span: float = Field(0.45, gt=0.0, description="Cosine above the floor that counts as full semantic support.")
    embed_weight: float = Field(
        0.55, ge=0.0, le=1.0, description="Share of the semantic (embedding) score in support; the rest is word overlap."
    )


class LLMSettings(BaseModel):
    """The chat model: the packaged local GGUF, or any OpenAI-compatible server."""

    backend: Literal["local", "openai"] = Field(
        "local", description="'local' runs the packaged Qwen GGUF in-process; 'openai' uses base_url."
    )
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.")
    model: str = Field("qwen2.5-coder-1.5b-instruct-q4_k_m", description="Model name sent to the server.")
    api_key: SecretStr = Field(SecretStr("not-needed"), description="Key for the OpenAI-compatible server (never printed).")
    model_path: Path | None = Field(None, description="A GGUF file to use instead of the packaged one.")
    n_ctx: int = Field(4096, ge=512, description="Context window of the local model.")
    n_threads: int = Field(2, ge=1, description="CPU threads for the local model while it writes the answer.")
    n_threads_batch: int | None = Field(
        None, ge=1, description="CPU threads while the local model reads the prompt (default: n_threads)."
    )
    n_batch: int = Field(512, ge=32, description="Local model: prompt tokens handed to llama.cpp per call.")
    n_ubatch: int = Field(512, ge=32, description="Local model: prompt tokens computed per step (at most n_batch).")
    flash_attn: bool = Field(False, description="Local model: llama.cpp's flash attention (measured in benchmarks/).")
    warm_prompt: bool = Field(
        True, description="Local model: read the answer prompt's fixed instructions at load, so no question waits for them."
    )
    max_tokens: int = Field(160, ge=16, description="Answer token budget.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    timeout_s: float = Field(
        120.0, gt=0, description="Server backend: seconds to wait for the connection, the first token and each next one."
    )
    max_retries: int = Field(
        2, ge=0, le=10, description="Server backend: retries of a refused, failed or timed-out request, with backoff."
    )


class ServeSettings(BaseModel):
    """The HTTP server (`paper-assistant serve`)."""

    max_pending: int = Field(
        8, ge=1, description="Answer requests accepted at once (generating or waiting for the model); "
        "more are turned away with 503 and Retry-After."
    )
    probe_timeout_s: float = Field(
        2.0, gt=0, description="How long /healthz waits for the chat server and the Chroma server to answer."
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest request body taken (bigger ones get 413); a question is at most "
        "a few hundred tokens and 50 turns of history fit easily."
    )
    retry_after_initial_s: float = Field(
        15.0, gt=0, description="How long one answer is assumed to take (admission to last byte) until one has "
        "completed; Retry-After is this time divided by max_pending."
    )
    retry_after_smoothing: float = Field(
        0.7, ge=0.0, lt=1.0, description="Weight of the previous typical answer time when a completed answer "
        "updates it (a moving average)."
    )
    retry_after_max_s: int = Field(300, ge=1, description="Retry-After never says more than this many seconds.")


class Settings(BaseSettings):
    """All settings of paper-assistant."""

    model_config = SettingsConfigDict(env_prefix="PAPER_ASSISTANT_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Index, model cache and feedback.")
    max_question_tokens: int = Field(
        256, ge=8, description="A longer question is answered from its final sentences (question_truncated: true)."
    )
    translate_questions: bool = Field(
        True, description="The chat model puts a question in another language into English before retrieval "
        "(the embedder and the abstracts are English); the answer comes in English."
    )
    drop_unsupported_claims: bool = Field(True, description="Remove claims their cited abstract does not support.")
    grounding_mode: Literal["checker", "judge"] = Field(
        "checker", description="'judge' also asks the chat model to confirm each claim (slower, one call per claim)."
    )
    min_support: float = Field(0.5, ge=0.0, le=1.0, description="Support score a claim needs to count as grounded.")
    corpus: CorpusSettings = Field(default_factory=CorpusSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    support: SupportSettings = Field(default_factory=SupportSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @property
    def store_path(self) -> Path:
        """Folder of the embedded Chroma store."""
        return self.store.path or self.data_dir / "chroma"

    @property
    def model_cache_dir(self) -> Path:
        """Where the joined GGUF file is cached."""
        return self.data_dir / "models"
