"""Answer latency with the packaged local model: our settings beside today's, and beside LlamaIndex's
stock CitationQueryEngine.

All three run in this process over the same Chroma index and the same embedder, each with its own
llama.cpp model instance (so no side's prompts evict another's cached prompt prefix), with the same
answer budget. "today" is our pipeline with the settings this project shipped with before the local
model study (`TODAY_LLM`: no flash attention, the fixed instructions read with the first question). The
engine (wrapped for LlamaIndex by evals.baselines.ChatModelLLM, which sends each prompt as one user
message so the GGUF's Qwen chat template applies) is configured as the quality eval configures it
(top 5 chunks) and streams. Time to sources (ours: the `sources` event, when the pipeline emits one),
to first token and total are taken from the call until the first streamed text and until the final
answer (ours includes grounding). Each side gets one unmeasured warm-up question (model load); then
the sides answer question by question, in turn, so load on the machine falls on all alike. An answer
that streams no token (a refusal) counts its total as its time to first token, on every side, and
all refusals are read by the eval's one refusal reader. Also records how many answers contain the
expected figures (whole tokens), so a fast wrong side does not look good by accident.
"""

from __future__ import annotations

import time
from typing import Any

from assistant import REFUSAL, Assistant
from assistant.backends import make_chat_model
from evals.metrics import has_all_needles, reads_as_refusal
from harness.common import answerable_questions, percentile, seed_settings

from .common import Result, Row, log

ENGINE_TOP_K = 5  # as evals.baselines.CitationEngineBaseline
TODAY_LLM = {"flash_attn": False, "n_batch": 512, "n_ubatch": 512, "warm_prompt": False}


def _ours(assistant: Assistant, question: str) -> tuple[float | None, float, str, float | None]:
    started = time.perf_counter()
    first: float | None = None
    sources: float | None = None
    text = ""
    for event in assistant.ask_stream(question):
        if event.kind == "sources" and sources is None:
            sources = time.perf_counter() - started
        if event.kind == "token" and first is None:
            first = time.perf_counter() - started
        elif event.answer is not None:
            text = event.answer.answer
    return first, time.perf_counter() - started, text, sources


def _engine(engine: Any, question: str) -> tuple[float | None, float, str, float | None]:
    started = time.perf_counter()
    first: float | None = None
    pieces = []
    response = engine.query(question)
    for piece in response.response_gen:
        if piece and first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    return first, time.perf_counter() - started, "".join(pieces), None


def run(count: int = 10) -> Result:
    """p50/p95 time to first token and total over `count` answerable eval questions, ours vs the engine."""
    from llama_index.core.query_engine import CitationQueryEngine

    from evals.baselines import ChatModelLLM

    questions = answerable_questions(count + 1)
    warmup, measured = questions[0], questions[1:]
    assistant = Assistant.from_settings(seed_settings())
    today = Assistant(seed_settings().model_copy(update={"llm": assistant.settings.llm.model_copy(update=TODAY_LLM)}),
                      embedder=assistant.embedder)
    settings = assistant.settings
    llm = ChatModelLLM(make_chat_model(settings.llm, settings.model_cache_dir), max_tokens=settings.llm.max_tokens)
    engine = CitationQueryEngine.from_args(assistant.vector_index, llm=llm, similarity_top_k=ENGINE_TOP_K,
                                           streaming=True)
    sides = {"ours": lambda q: _ours(assistant, q), "today": lambda q: _ours(today, q),
             "engine": lambda q: _engine(engine, q)}
    runs: dict[str, dict[str, list[Any]]] = {
        name: {"ttft": [], "total": [], "hit": [], "refused": [], "sources": []} for name in sides}
    for name, answer in sides.items():
        log(f"{name}: warm-up")
        answer(warmup["question"])
    log(f"{len(measured)} questions, the sides in turn")
    for i, row in enumerate(measured):
        names = list(sides)
        for name in names[i % len(names):] + names[:i % len(names)]:
            first, total, text, sources = sides[name](row["question"])
            rec = runs[name]
            rec["ttft"].append(total if first is None else first)  # a refusal's first output is the refusal
            rec["total"].append(total)
            rec["hit"].append(has_all_needles(text, row["must_contain"]) and not reads_as_refusal(text, REFUSAL))
            rec["refused"].append(reads_as_refusal(text, REFUSAL))
            if sources is not None:
                rec["sources"].append(sources)
            log(f"  {name} {row['id']}: first output {rec['ttft'][-1]:.1f} s, total {total:.1f} s")

    result = Result(details={"questions": [r["id"] for r in measured], "engine_top_k": ENGINE_TOP_K,
                             "max_tokens": assistant.settings.llm.max_tokens})
    for name, rec in runs.items():
        result.details[name] = {
            "ttft_s": [round(x, 2) for x in rec["ttft"]],
            "total_s": [round(x, 2) for x in rec["total"]],
            "answers_with_expected_figures": f"{sum(rec['hit'])}/{len(rec['hit'])}",
            "refusals": sum(rec["refused"]),
            "sources_s": [round(x, 3) for x in rec["sources"]],
        }
    answered = [i for i, refused in enumerate(runs["ours"]["refused"]) if not refused]
    for key, label in (("ttft", "time to first output"), ("total", "answer total")):
        for q in (50, 95):
            for base, base_label in (("today", "today's model settings"), ("engine", "LlamaIndex CitationQueryEngine")):
                result.rows.append(Row("answer", f"{label} p{q} ({len(measured)} questions)",
                                       percentile(runs["ours"][key], q), "ms", base_label,
                                       percentile(runs[base][key], q)))
        if answered:
            result.rows.append(Row("answer", f"answered questions: {label} p50 ({len(answered)})",
                                   percentile([runs["ours"][key][i] for i in answered], 50), "ms",
                                   "today's model settings", percentile([runs["today"][key][i] for i in answered], 50)))
    if runs["ours"]["sources"]:
        result.rows.append(Row("answer", "time to sources p50", percentile(runs["ours"]["sources"], 50), "ms",
                               "today: sources came with the answer", percentile(runs["today"]["total"], 50),
                               target="<= 500 ms", ok=percentile(runs["ours"]["sources"], 50) <= 500))
    for base, base_label in (("today", "today's model settings"), ("engine", "LlamaIndex CitationQueryEngine")):
        result.rows.append(Row("answer", "answers containing the expected figures", sum(runs["ours"]["hit"]),
                               "answers", base_label, sum(runs[base]["hit"]), note=f"of {len(measured)}"))
    return result
