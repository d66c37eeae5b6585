"""Run the eval suite: answers of every system on the chosen questions (interleaved question by
question), retrieval of each mode, and the support checker on its labelled claims. Writes
results JSON and an HTML report.

The model steps are here; every number comes from `evals.scoring` and `evals.metrics`.
What was tuned on which split is written down in `evals/README.md`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assistant.answering import REFUSAL, Prompts
from assistant.api import Assistant
from assistant.config import Settings
from assistant.errors import InputError

from . import metrics as m
from .questions import DATA, Question, load_questions, select, stratified_sample
from .scoring import score_row, summarise
from .systems import BASELINES, CheckoutSystem, Outcome, build_systems


def check_claims(assistant: Assistant, claims: list[tuple[str, list[str]]], question: str) -> list[bool]:
    """Per draft claim: do the papers it cites, taken together, support it (our checker, and the
    judge in judge mode)? A claim that cites nothing is unsupported."""
    if not claims:
        return []
    return [s >= assistant.settings.min_support for s in assistant.check_claims(claims, question)]


def eval_retrieval(assistant: Assistant, questions: list[Question], mode: str) -> dict[str, Any]:
    """hit@1/3/5, recall@5/10 and MRR of one retrieval mode over the questions that have gold papers."""
    rows = []
    for q in questions:
        if not q.gold:
            continue
        started = time.perf_counter()
        try:
            ranked = [p.paper_id for p in assistant.retrieve(q.question, top_k=10, mode=mode)]
        except InputError:
            ranked = []
        rows.append({
            "id": q.id, "kind": q.kind, "ranked": ranked, "ms": (time.perf_counter() - started) * 1000,
            "hit@1": m.hit_at_k(ranked, q.gold, 1), "hit@3": m.hit_at_k(ranked, q.gold, 3),
            "hit@5": m.hit_at_k(ranked, q.gold, 5), "recall@5": m.recall_at_k(ranked, q.gold, 5),
            "recall@10": m.recall_at_k(ranked, q.gold, 10), "mrr": m.reciprocal_rank(ranked, q.gold),
        })
    summary: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        sub = [r for r in rows if kind == "all" or r["kind"] == kind]
        summary[kind] = {k: m.mean([r[k] for r in sub]) for k in ("hit@1", "hit@3", "hit@5", "recall@5", "recall@10", "mrr")}
        summary[kind]["n"] = len(sub)
    summary["latency_ms"] = {"p50": m.percentile([r["ms"] for r in rows], 50),
                             "p95": m.percentile([r["ms"] for r in rows], 95)}
    return {"summary": summary, "rows": rows}


def eval_checker(assistant: Assistant, split: str | None, path: Path = DATA / "claims.jsonl") -> dict[str, Any]:
    """Precision, recall and balanced accuracy of the support checker on labelled claims of a split."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_title = {p.title: p.id for p in assistant.papers.values()}
    rows = [r for r in rows if r["title"] in by_title and (split is None or r.get("split", "dev") == split)]
    started = time.perf_counter()
    scores = assistant.check_claims([(r["claim"], [by_title[r["title"]]]) for r in rows], "")
    per_claim_ms = (time.perf_counter() - started) * 1000 / max(len(rows), 1)
    predicted = [s >= assistant.settings.min_support for s in scores]
    labels = [bool(r["supported"]) for r in rows]
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        by_kind[kind] = m.mean([float(predicted[i] == labels[i]) for i in idx])
    return {"split": split, "threshold": assistant.settings.min_support, "n": len(rows),
            **m.binary_scores(labels, predicted), "accuracy_by_kind": by_kind, "ms_per_claim": per_claim_ms,
            "errors": [{"id": r["id"], "kind": r["kind"], "score": s} for r, s, p, y in
                       zip(rows, scores, predicted, labels) if p != y]}


def _row(q: Question, system: str, outcome: Outcome, supported: list[bool], system_prompt: str) -> dict[str, Any]:
    draft_cited = list(dict.fromkeys(p for _, pids in outcome.draft_claims for p in pids))
    abstained = m.reads_as_refusal(outcome.answer, REFUSAL)
    return {
        "id": q.id, "kind": q.kind, "split": q.split, "system": system, "question": q.question, "expect": q.expect,
        "answer": outcome.answer, "answer_kind": outcome.kind, "draft": outcome.draft, "cited": outcome.cited,
        "citations": outcome.citations, "timings_ms": outcome.timings_ms, "usage": outcome.usage,
        "replayed": outcome.replayed,
        **score_row(q, outcome.answer, outcome.cited, outcome.draft, draft_cited, abstained, supported, system_prompt),
    }


def _ask(system: Any, question: str) -> Outcome:
    try:
        return system.ask(question)
    except InputError as exc:  # a question the system refuses to take is a refusal, not a crash
        return Outcome(answer="", draft="", timings_ms={}, usage={}, citations=[{"error": str(exc)}])


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except OSError:
        return ""


def run(
    settings: Settings,
    questions: list[Question] | None = None,
    baselines: tuple[str, ...] = BASELINES,
    progress: bool = True,
    assistant: Assistant | None = None,
    retrieval: bool = True,
    before: Path | None = None,
    partial: Path | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    """Every system on `questions` (default: the dev split), question by question; returns the results.
    With `partial`, the answers so far are written there after each question."""
    assistant = assistant or Assistant.from_settings(settings)
    every = load_questions()
    questions = select(every, "dev") if questions is None else questions
    splits = sorted({q.split for q in questions})
    log(f"eval: {len(questions)} questions ({', '.join(splits)}), baselines: {', '.join(baselines) or 'none'}")
    systems = build_systems(assistant, baselines, before)
    rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
    system_prompt = Prompts.load().system  # the prompt the assistant answers with; a leak of it is counted
    for q in tqdm(questions, desc="eval", unit="q", disable=not progress, file=sys.stderr):
        for system in systems:
            outcome = _ask(system, q.question)
            supported = check_claims(assistant, outcome.draft_claims, q.question)
            rows[system.name].append(_row(q, system.name, outcome, supported, system_prompt))
        if partial is not None:  # a long run keeps what it has measured so far
            partial.write_text(json.dumps({name: {"summary": summarise(r), "rows": r} for name, r in rows.items()},
                                          default=str))
    for system in systems:
        if isinstance(system, CheckoutSystem):
            system.close()
    pool = [q for q in every if q.split in splits]
    results: dict[str, Any] = {
        "stamp": {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _git_commit(),
                  "index_fingerprint": assistant.fingerprint, "model": assistant.chat_model.name,
                  "machine": f"{platform.machine()} cpus={os.cpu_count()}", "splits": splits,
                  "settings": json.loads(assistant.settings.model_dump_json()), "questions": len(questions),
                  "before": str(before) if before else None,
                  "question_ids": [q.id for q in questions]},
        "answers": {name: {"summary": summarise(r), "rows": r} for name, r in rows.items()},
        "retrieval": {},
        "checker": {split: eval_checker(assistant, split) for split in splits},
    }
    if retrieval:  # cheap: measured on every question of the splits in play
        for mode in ("hybrid", "bm25", "dense"):
            results["retrieval"][mode] = eval_retrieval(assistant, pool, mode)
    return results


def gate_questions(sample: dict[str, Any]) -> list[Question]:
    """The gate's seeded, stratified sample of its split."""
    pool = select(load_questions(), sample["split"])
    return stratified_sample(pool, int(sample["size"]), int(sample["seed"]))


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """results.json and report.html in out_dir; the previous results.json becomes previous.json."""
    from .report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    current, previous = out_dir / "results.json", out_dir / "previous.json"
    before = json.loads(current.read_text()) if current.exists() else None
    if before is not None:
        current.replace(previous)
    current.write_text(json.dumps(results, indent=2, default=str))
    html = out_dir / "report.html"
    html.write_text(render_html(results, before), encoding="utf-8")
    return current, html
