"""Answer latency with the packaged local model, beside LlamaIndex's stock CitationQueryEngine.

Both run in this process over the same Chroma index, the same embedder and the same llama.cpp
model instance (wrapped for LlamaIndex by evals.baselines.ChatModelLLM, which sends each prompt
as one user message so the GGUF's Qwen chat template applies), with the same answer budget.
The engine is configured as the quality eval configures it (top 5 chunks) and streams. Time to
first token and total are taken from the call until the first streamed text and until the final
answer (ours includes grounding). Each side gets one unmeasured warm-up question (model load,
prompt-prefix cache); then the two answer question by question, alternating, so load on the
machine falls on both alike. An answer that streams no token (a refusal) counts its total as its
time to first token, on both sides, and both sides' refusals are read by the eval's one refusal
reader. Also records how many answers contain the expected figures (whole tokens), so a fast
wrong engine does not look good by accident.
"""

from __future__ import annotations

import time
from typing import Any

from assistant import REFUSAL, Assistant
from evals.metrics import has_all_needles, reads_as_refusal
from harness.common import answerable_questions, percentile, seed_settings

from .common import Result, Row, log

ENGINE_TOP_K = 5  # as evals.baselines.CitationEngineBaseline


def _ours(assistant: Assistant, question: str) -> tuple[float | None, float, str]:
    started = time.perf_counter()
    first: float | None = None
    text = ""
    for event in assistant.ask_stream(question):
        if event.kind == "token" and first is None:
            first = time.perf_counter() - started
        elif event.answer is not None:
            text = event.answer.answer
    return first, time.perf_counter() - started, text


def _engine(engine: Any, question: str) -> tuple[float | None, float, str]:
    started = time.perf_counter()
    first: float | None = None
    pieces = []
    response = engine.query(question)
    for piece in response.response_gen:
        if piece and first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    return first, time.perf_counter() - started, "".join(pieces)


def run(count: int = 10) -> Result:
    """p50/p95 time to first token and total over `count` answerable eval questions, ours vs the engine."""
    from llama_index.core.query_engine import CitationQueryEngine

    from evals.baselines import ChatModelLLM

    questions = answerable_questions(count + 1)
    warmup, measured = questions[0], questions[1:]
    assistant = Assistant.from_settings(seed_settings())
    llm = ChatModelLLM(assistant.chat_model, max_tokens=assistant.settings.llm.max_tokens)
    engine = CitationQueryEngine.from_args(assistant.vector_index, llm=llm, similarity_top_k=ENGINE_TOP_K,
                                           streaming=True)
    sides = {"ours": lambda q: _ours(assistant, q), "engine": lambda q: _engine(engine, q)}
    runs: dict[str, dict[str, list[Any]]] = {name: {"ttft": [], "total": [], "hit": [], "refused": []} for name in sides}
    for name, answer in sides.items():
        log(f"{name}: warm-up")
        answer(warmup["question"])
    log(f"{len(measured)} questions, ours and the engine alternating")
    for row in measured:
        for name, answer in sides.items():
            first, total, text = answer(row["question"])
            rec = runs[name]
            rec["ttft"].append(total if first is None else first)  # a refusal's first output is the refusal
            rec["total"].append(total)
            rec["hit"].append(has_all_needles(text, row["must_contain"]) and not reads_as_refusal(text, REFUSAL))
            rec["refused"].append(reads_as_refusal(text, REFUSAL))
            log(f"  {name} {row['id']}: first output {rec['ttft'][-1]:.1f} s, total {total:.1f} s")

    result = Result(details={"questions": [r["id"] for r in measured], "engine_top_k": ENGINE_TOP_K,
                             "max_tokens": assistant.settings.llm.max_tokens})
    for name, rec in runs.items():
        result.details[name] = {
            "ttft_s": [round(x, 2) for x in rec["ttft"]],
            "total_s": [round(x, 2) for x in rec["total"]],
            "answers_with_expected_figures": f"{sum(rec['hit'])}/{len(rec['hit'])}",
            "refusals": sum(rec["refused"]),
        }
    for key, label in (("ttft", "time to first output"), ("total", "answer total")):
        for q in (50, 95):
            result.rows.append(Row("answer", f"{label} p{q} ({len(measured)} questions)",
                                   percentile(runs["ours"][key], q), "ms", "LlamaIndex CitationQueryEngine",
                                   percentile(runs["engine"][key], q)))
    ours_hits, engine_hits = sum(runs["ours"]["hit"]), sum(runs["engine"]["hit"])
    result.rows.append(Row("answer", "answers containing the expected figures", ours_hits, "answers",
                           "LlamaIndex CitationQueryEngine", engine_hits, note=f"of {len(measured)}"))
    return result
