"""LlamaIndex's stock CitationQueryEngine over our Chroma index and our chat model: the answer baseline.

Same embedder, same store, same model file and settings; only the engine differs. The engine gets
its own model instance, so its prompts do not evict our answer prompt's cached prefix (nor ours
its own): each side's latency is its own. Its answers cite "[N]" meaning the N-th source node; we
map those back to papers the way a user of that engine would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.custom import CustomLLM

from assistant.api import Assistant
from assistant.backends import ChatModel, make_chat_model
from assistant.text import CITATION_MARK


class ChatModelLLM(CustomLLM):
    """Our chat model as a LlamaIndex LLM; prompts go in as one user message, so the model's template applies."""

    _model: Any = PrivateAttr()
    max_tokens: int = 256

    def __init__(self, model: ChatModel, max_tokens: int = 256) -> None:
        super().__init__(max_tokens=max_tokens)
        self._model = model

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=self.max_tokens, model_name=self._model.name)

    def _pieces(self, prompt: str) -> Iterator[str]:
        for piece in self._model.stream([{"role": "user", "content": prompt}], self.max_tokens):
            if piece.text:
                yield piece.text

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._pieces(prompt)))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = ""
        for delta in self._pieces(prompt):
            text += delta
            yield CompletionResponse(text=text, delta=delta)


class CitationEngineBaseline:
    """Answers with `CitationQueryEngine` (top 5 chunks, its default citation prompts)."""

    name = "citation_engine"

    def __init__(self, assistant: Assistant, top_k: int = 5) -> None:
        from llama_index.core.query_engine import CitationQueryEngine

        settings = assistant.settings
        llm = ChatModelLLM(make_chat_model(settings.llm, settings.model_cache_dir), max_tokens=settings.llm.max_tokens)
        retriever = assistant.vector_index.as_retriever(similarity_top_k=top_k)
        self.engine = CitationQueryEngine.from_args(assistant.vector_index, llm=llm, retriever=retriever)

    def ask(self, question: str) -> dict[str, Any]:
        """The engine's answer, its cited [N] markers resolved to paper ids, and timings."""
        started = time.perf_counter()
        response = self.engine.query(question)
        total = (time.perf_counter() - started) * 1000
        sources = [node.node.metadata.get("paper_id") for node in response.source_nodes]
        markers = [int(n) for n in CITATION_MARK.findall(response.response or "")]
        resolved = [sources[n - 1] for n in markers if 1 <= n <= len(sources)]
        return {
            "answer": response.response or "",
            "markers": markers,
            "cited_paper_ids": list(dict.fromkeys(p for p in resolved if p)),
            "source_paper_ids": sources,
            "timings_ms": {"total": round(total, 1)},
        }
