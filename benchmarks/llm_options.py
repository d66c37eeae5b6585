"""The local model's options, each against today's defaults, on the same answer prompts in one run.

Every option runs in its own process with its own `Llama` (so its prompt-prefix cache and its peak
memory are its own), and the prompts go to the options in turn, question by question, so load on
the machine falls on all alike. The prompts are the real answer prompts of answerable dev-split eval
questions (retrieval, packing and the prompt files as `Assistant.ask` builds them). Reported per
option: time to first token and total (medians), prompt tokens read per second (tokens not already
in the context / time to first token), answer tokens per second, peak RSS, and how many drafts are
identical to the baseline's (temperature 0: an option that changes the drafts changes the answers).

A second pass, "mixed", sends a translation prompt between answer prompts, as a non-English question
does, to measure whether a state cache keeps the answer prompt's prefix from being evicted.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.common import answerable_questions, model_path, seed_settings

from .common import Result, Row, log

BASELINE = "today"
# name -> (Llama keyword arguments, extra behaviour); "today" is what the project shipped with.
OPTIONS: dict[str, dict[str, Any]] = {
    "today": {"n_batch": 512},
    "flash_attn": {"n_batch": 512, "flash_attn": True},
    "flash_attn+ubatch1024": {"n_batch": 1024, "n_ubatch": 1024, "flash_attn": True},
    "flash_attn+threads1": {"n_batch": 512, "flash_attn": True, "n_threads": 1, "n_threads_batch": 2},
    # logits for every token (llama-cpp-python sizes its score array from the argument, not from the draft model)
    "flash_attn+lookup2": {"n_batch": 512, "flash_attn": True, "lookup": 2, "logits_all": True},
    "flash_attn+warm": {"n_batch": 512, "flash_attn": True, "warm": True},
    # the packaged Q4_K_M requantized by llama.cpp's own quantizer (errors stack: drafts must stay the same)
    "requant-q4_0": {"n_batch": 512, "weights": "q4_0"},
    "requant-q8_0": {"n_batch": 512, "weights": "q8_0"},
}
MIXED = {"flash_attn": {"n_batch": 512, "flash_attn": True},
         "flash_attn+ramcache": {"n_batch": 512, "flash_attn": True, "ramcache": True}}


def _worker(conn: Any, path: str, options: dict[str, Any], system: str) -> None:
    """Serve prompts from `conn` with one Llama built from `options` until told to stop."""
    from llama_cpp import Llama, LlamaRAMCache
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    kwargs = {k: v for k, v in options.items() if k not in ("lookup", "warm", "ramcache", "weights")}
    if options.get("weights"):
        path = str(_requantized(path, options["weights"]))
    kwargs.setdefault("n_threads", 2)
    if options.get("lookup"):
        kwargs["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=options["lookup"])
    llm = Llama(model_path=path, n_ctx=4096, verbose=False, **kwargs)
    if options.get("ramcache"):
        llm.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
    if options.get("warm"):
        llm.create_chat_completion(messages=[{"role": "system", "content": system}, {"role": "user", "content": ""}],
                                   max_tokens=1, temperature=0.0)
    conn.send("ready")
    while (messages := conn.recv()) is not None:
        try:
            conn.send(_one(llm, messages))
        except (ValueError, RuntimeError) as exc:  # an option that breaks is reported as such, and the others go on
            conn.send({"error": f"{exc.__class__.__name__}: {exc}"})
    conn.send({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _one(llm: Any, messages: Any) -> dict[str, Any]:
    """Stream one answer prompt; time to first token, total, tokens read and written, the draft."""
    before = llm.input_ids[: llm.n_tokens].tolist()
    started = time.perf_counter()
    first = None
    pieces = []
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=160, temperature=0.0, stream=True):
        delta = chunk["choices"][0]["delta"].get("content")
        if delta:
            first = first or time.perf_counter() - started
            pieces.append(delta)
    total = time.perf_counter() - started
    completion = len(llm.tokenize("".join(pieces).encode(), add_bos=False, special=False)) if pieces else 0
    prompt = llm.input_ids[: max(llm.n_tokens - completion, 0)].tolist()
    shared = next((i for i, (a, b) in enumerate(zip(before, prompt)) if a != b), min(len(before), len(prompt)))
    return {"first": first or total, "total": total, "prompt": len(prompt), "new": len(prompt) - shared,
            "completion": completion, "text": "".join(pieces)}


def _requantized(path: str, kind: str) -> Path:
    """The packaged model requantized to `kind` (made once, beside it, by llama.cpp's quantizer)."""
    import llama_cpp

    out = Path(path).with_name(f"{Path(path).stem}.requant-{kind}.gguf")
    if not out.exists():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
        params.allow_requantize = True
        tmp = out.with_suffix(".part")
        if llama_cpp.llama_model_quantize(path.encode(), str(tmp).encode(), params) != 0:
            raise RuntimeError(f"llama.cpp could not requantize {path} to {kind}")
        tmp.rename(out)
    return out


def _prompts(count: int) -> tuple[str, list[Any], Any]:
    """The system prompt, `count` answer prompts, and one translation prompt."""
    from assistant import Assistant
    from assistant.answering import build_messages, pack

    assistant = Assistant.from_settings(seed_settings())
    out = []
    for row in answerable_questions(count):
        packed = pack(assistant.retrieve(row["question"]), assistant.context_budget(row["question"]))
        out.append(build_messages(assistant.prompts, row["question"], packed))
    translate = [{"role": "user", "content": assistant.prompts.translate.format(
        question="¿Con cuántos tokens se entrenó el modelo?")}]
    return assistant.prompts.system, out, translate


def _drive(options: dict[str, dict[str, Any]], system: str, prompts: list[Any],
           between: Any = None) -> dict[str, dict[str, Any]]:
    """Each option in its own process; prompt i goes to every option (rotating who goes first)."""
    ctx = mp.get_context("spawn")
    workers = {}
    for name, opts in options.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, str(model_path()), opts, system), daemon=True)
        proc.start()
        workers[name] = (parent, proc)
    for name, (conn, _) in workers.items():
        assert conn.recv() == "ready", name
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in options}
    names = list(options)
    for i, messages in enumerate(prompts):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            conn = workers[name][0]
            if between is not None:
                conn.send(between)
                conn.recv()
            conn.send(messages)
            runs[name].append(conn.recv())
        log(f"prompt {i + 1}/{len(prompts)}: " + ", ".join(
            f"{n} {runs[n][-1].get('first', float('nan')):.2f}s" for n in names))
    out = {}
    for name, (conn, proc) in workers.items():
        conn.send(None)
        out[name] = {"runs": runs[name], **conn.recv()}
        proc.join(timeout=30)
    return out


def _summary(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    errors = [r["error"] for r in result["runs"] if "error" in r]
    if errors:
        return {"failed": errors[0], "peak_rss_mb": result["peak_rss_mb"]}
    runs = result["runs"][1:]  # the first prompt also reads the system prompt: reported apart as "first"
    first = [r["first"] for r in runs]
    gen = [(r["completion"] - 1) / max(r["total"] - r["first"], 1e-6) for r in runs if r["completion"] > 1]
    same = sum(r["text"] == b["text"] for r, b in zip(result["runs"], baseline["runs"]))
    return {
        "first_token_s": float(np.median(first)),
        "total_s": float(np.median([r["total"] for r in runs])),
        "cold_first_token_s": result["runs"][0]["first"],
        "prompt_tok_s": float(np.median([r["new"] / r["first"] for r in runs])),
        "new_prompt_tokens": float(np.median([r["new"] for r in runs])),
        "answer_tok_s": float(np.median(gen)) if gen else 0.0,
        "peak_rss_mb": result["peak_rss_mb"],
        "same_drafts": same / len(result["runs"]),
    }


def run(count: int = 12, options: list[str] | None = None) -> Result:
    """Every option (default: all) against today's defaults on `count` answer prompts, plus the mixed pass."""
    system, prompts, translate = _prompts(count)
    chosen = {n: OPTIONS[n] for n in [BASELINE, *(o for o in (options or OPTIONS) if o != BASELINE)]}
    results = _drive(chosen, system, prompts)
    summaries = {name: _summary(res, results[BASELINE]) for name, res in results.items()}
    mixed = _drive(MIXED, system, prompts, between=translate)
    mixed_summaries = {name: _summary(res, mixed["flash_attn"]) for name, res in mixed.items()}
    rows = []
    base = summaries[BASELINE]
    for name, s in summaries.items():
        if "failed" in s:
            rows.append(Row("llm_options", f"{name}: failed", 1, "", note=s["failed"][:120]))
            continue
        for metric, unit in (("first_token_s", "s"), ("total_s", "s"), ("prompt_tok_s", "tok/s"),
                             ("answer_tok_s", "tok/s"), ("peak_rss_mb", "MB"), ("same_drafts", "share")):
            rows.append(Row("llm_options", f"{name}: {metric}", s[metric], unit, BASELINE, base[metric]))
    for name, s in mixed_summaries.items():
        rows.append(Row("llm_options", f"mixed {name}: first_token_s", s["first_token_s"], "s",
                        "mixed flash_attn", mixed_summaries["flash_attn"]["first_token_s"]))
    return Result(rows=rows, details={"options": OPTIONS, "summaries": summaries, "mixed": mixed_summaries,
                                      "prompt_tokens": [r["prompt"] for r in results[BASELINE]["runs"]]})
