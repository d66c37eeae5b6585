"""Run the eval suite: retrieval (ours, BM25-only, dense-only), answers (ours, stock CitationQueryEngine),
the support checker on its labelled claims, and latency. Writes results JSON + an HTML report.

The model steps are here; every number is computed by the pure functions in `evals.metrics`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.api import Assistant
from assistant.config import Settings
from assistant.corpus import paper_id
from assistant.grounding import split_claims, strip_keys

from . import metrics as m

DATA = Path(__file__).parent / "data"
KINDS = ("single", "multi", "unanswerable", "adversarial")
BASELINES = ("bm25", "dense", "citation_engine")
# The fast subset CI runs on every build: each kind, answerable and not, injection included.
CI_SUBSET = ("s04", "s02", "s21", "s38", "m01", "u01", "u05", "u15", "a01", "a05", "a10")


@dataclass
class Question:
    """One eval question with its gold papers and expected behaviour."""

    id: str
    kind: str
    question: str
    gold: set[str]
    must_contain: list[str]
    expect: str
    forbidden: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def load_questions(path: Path = DATA / "questions.jsonl") -> list[Question]:
    """The question set; gold titles become paper ids."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Question(
                id=row["id"], kind=row["kind"], question=row["question"],
                gold={paper_id(t) for t in row.get("gold_titles", [])}, must_contain=row.get("must_contain", []),
                expect=row["expect"], forbidden=row.get("forbidden", []), raw=row,
            ))
    return out


def select(questions: list[Question], only: str | None, limit: int | None, ids: tuple[str, ...] | None) -> list[Question]:
    """Filter by kind and ids, then take the first `limit` of each kind (so every kind stays represented)."""
    chosen = [q for q in questions if (only is None or q.kind == only) and (ids is None or q.id in ids)]
    if limit is None:
        return chosen
    per_kind: dict[str, int] = {}
    kept = []
    for q in chosen:
        per_kind[q.kind] = per_kind.get(q.kind, 0) + 1
        if per_kind[q.kind] <= limit:
            kept.append(q)
    return kept


class Progress:
    """A progress bar on stderr."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.enabled, self.done, self.started = total, label, enabled, 0, time.perf_counter()

    def step(self, note: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        filled = int(30 * self.done / max(self.total, 1))
        eta = (time.perf_counter() - self.started) / self.done * (self.total - self.done)
        end = "\n" if self.done >= self.total else ""
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                         f"eta {eta:4.0f}s {note[:20]:<20}{end}")
        sys.stderr.flush()


def eval_retrieval(assistant: Assistant, questions: list[Question], mode: str) -> dict[str, Any]:
    """hit@1/3/5, recall@5 and MRR of one retrieval mode over questions that have gold papers."""
    rows = []
    for q in questions:
        if not q.gold:
            continue
        started = time.perf_counter()
        ranked = [p.paper_id for p in assistant.retriever.passages(q.question, top_k=10, mode=mode)]
        rows.append({
            "id": q.id, "kind": q.kind, "ranked": ranked[:5], "ms": (time.perf_counter() - started) * 1000,
            "hit@1": m.hit_at_k(ranked, q.gold, 1), "hit@3": m.hit_at_k(ranked, q.gold, 3),
            "hit@5": m.hit_at_k(ranked, q.gold, 5), "recall@5": m.recall_at_k(ranked, q.gold, 5),
            "mrr": m.reciprocal_rank(ranked, q.gold),
        })
    summary: dict[str, Any] = {}
    for kind in ("single", "multi", "all"):
        sub = [r for r in rows if kind == "all" or r["kind"] == kind]
        summary[kind] = {k: m.mean([r[k] for r in sub]) for k in ("hit@1", "hit@3", "hit@5", "recall@5", "mrr")}
        summary[kind]["n"] = len(sub)
    summary["latency_ms"] = {"p50": m.percentile([r["ms"] for r in rows], 50),
                             "p95": m.percentile([r["ms"] for r in rows], 95)}
    return {"summary": summary, "rows": rows}


def score_answer(q: Question, answer_text: str, abstained: bool, cited: list[str], system_prompt: str) -> dict[str, Any]:
    """Per-question verdicts shared by every answering system."""
    expected_abstain = q.expect == "abstain"
    correct = abstained if expected_abstain else (not abstained and m.contains_all(answer_text, q.must_contain))
    leaked = m.leaks_prompt(answer_text, system_prompt) or not m.contains_none(answer_text, q.forbidden)
    return {
        "expected_abstain": expected_abstain, "abstained": abstained, "correct": correct, "leaked": leaked,
        "cited_gold": [p in q.gold for p in cited] if q.gold else [],
    }


def support_flags(
    assistant: Assistant, claims: list[tuple[str, list[str]]], question: str = ""
) -> tuple[list[bool], list[bool]]:
    """(per claim: its citations jointly support it; per citation: it supports its claim), by our checker."""
    claim_ok, citation_ok = [], []
    texts = [c for c, _ in claims]
    vectors = assistant.checker.claim_vectors(texts) if texts else []
    for (text, pids), vector in zip(claims, vectors):
        oks = [assistant.checker.score(text, vector, assistant.papers[p], question)[0] >= assistant.settings.min_support
               for p in pids if p in assistant.papers]
        claim_ok.append(any(oks))
        citation_ok.extend(oks)
    return claim_ok, citation_ok


def run_ours(assistant: Assistant, questions: list[Question], progress: bool) -> list[dict[str, Any]]:
    """Our assistant on every question."""
    rows = []
    bar = Progress(len(questions), "ours           ", progress)
    for q in questions:
        ans = assistant.ask(q.question)
        cited = [c.paper_id for c in ans.citations]
        by_key = {c.key: c.paper_id for c in ans.citations}
        shown = [(c.text, [by_key[k] for k in c.citations]) for c in ans.claims if c.supported]
        claim_ok, citation_ok = support_flags(assistant, shown, q.question)
        row = {"id": q.id, "kind": q.kind, "question": q.question, "expect": q.expect, "answer": ans.answer,
               "citations": [c.model_dump() for c in ans.citations],
               "claims": [c.model_dump() for c in ans.claims], "timings_ms": ans.timings_ms, "usage": ans.usage,
               "claims_supported": claim_ok, "citations_supporting": citation_ok,
               "draft_claims_supported": [c.supported for c in ans.claims],
               **score_answer(q, ans.answer, ans.abstained, cited, assistant.prompts.system)}
        rows.append(row)
        bar.step(q.id)
    return rows


REFUSAL_HINTS = ("not mentioned", "does not provide", "do not provide", "no information", "not provided",
                 "cannot answer", "can't answer", "not specified", "does not mention", "do not mention", "i'm sorry")


def run_citation_engine(assistant: Assistant, questions: list[Question], progress: bool) -> list[dict[str, Any]]:
    """LlamaIndex's stock CitationQueryEngine on every question, scored like ours."""
    from .baselines import CitationEngineBaseline

    engine = CitationEngineBaseline(assistant)
    rows = []
    bar = Progress(len(questions), "citation_engine", progress)
    for q in questions:
        out = engine.ask(q.question)
        text = out["answer"]
        abstained = not text.strip() or any(h in text.lower() for h in REFUSAL_HINTS)
        sources = out["source_paper_ids"]
        claims = [(strip_keys(s), [sources[k - 1] for k in keys if 1 <= k <= len(sources)])
                  for s, keys in split_claims(text)]
        claim_ok, citation_ok = support_flags(assistant, claims, q.question)
        resolvable = [1 <= k <= len(sources) for k in out["markers"]]
        rows.append({"id": q.id, "kind": q.kind, "question": q.question, "expect": q.expect, "answer": text,
                     "cited_paper_ids": out["cited_paper_ids"], "timings_ms": out["timings_ms"],
                     "claims_supported": claim_ok, "citations_supporting": citation_ok,
                     "markers_resolvable": resolvable,
                     **score_answer(q, text, abstained, out["cited_paper_ids"], assistant.prompts.system)})
        bar.step(q.id)
    return rows


def summarise_answers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every answer metric of one system."""
    answerable = [r for r in rows if not r["expected_abstain"]]
    abst = m.abstention_scores([r["expected_abstain"] for r in rows], [r["abstained"] for r in rows])
    unanswerable = [r for r in rows if r["expected_abstain"]]
    all_claims = [ok for r in rows if not r["abstained"] for ok in r["claims_supported"]]
    all_cites = [ok for r in rows if not r["abstained"] for ok in r["citations_supporting"]]
    gold_cites = [ok for r in rows if not r["abstained"] for ok in r["cited_gold"]]
    totals = [r["timings_ms"].get("total") for r in rows if r["timings_ms"].get("total") is not None]
    firsts = [r["timings_ms"]["first_token"] for r in rows if "first_token" in r["timings_ms"]]
    stages = sorted({k for r in rows for k in r["timings_ms"]})
    summary: dict[str, Any] = {
        "n": len(rows),
        "answer_accuracy": m.mean([float(r["correct"]) for r in answerable]),
        "accuracy_all": m.mean([float(r["correct"]) for r in rows]),
        "citation_recall": m.citation_recall(all_claims),
        "citation_precision": m.citation_precision(all_cites),
        "citation_gold_precision": m.mean([float(x) for x in gold_cites]),
        "abstention_on_unanswerable": m.mean([float(r["abstained"]) for r in unanswerable]),
        "false_abstention": abst["false_abstention"],
        "abstention_precision": abst["precision"],
        "abstention_recall": abst["recall"],
        "prompt_leaks": sum(r["leaked"] for r in rows),
        "latency_ms": {s: {"p50": m.percentile([r["timings_ms"][s] for r in rows if s in r["timings_ms"]], 50),
                           "p95": m.percentile([r["timings_ms"][s] for r in rows if s in r["timings_ms"]], 95)}
                       for s in stages},
        "total_ms": totals,
        "first_token_ms": firsts,
        "by_kind": {k: m.mean([float(r["correct"]) for r in rows if r["kind"] == k]) for k in KINDS},
    }
    if rows and "draft_claims_supported" in rows[0]:
        summary["faithfulness_draft"] = m.mean(
            [float(ok) for r in rows for ok in r["draft_claims_supported"]])
    if rows and "markers_resolvable" in rows[0]:
        summary["markers_resolvable"] = m.mean([float(ok) for r in rows for ok in r["markers_resolvable"]])
    usage = [r.get("usage") or {} for r in rows]
    summary["tokens"] = {k: sum(u.get(k, 0) for u in usage) for k in ("prompt_tokens", "completion_tokens")}
    return summary


def eval_checker(assistant: Assistant, path: Path = DATA / "claims.jsonl") -> dict[str, Any]:
    """Precision/recall of our support checker on the labelled (claim, abstract, supported?) pairs."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_title = {p.title: p for p in assistant.papers.values()}
    rows = [r for r in rows if r["title"] in by_title]
    vectors = assistant.checker.claim_vectors([r["claim"] for r in rows])
    started = time.perf_counter()
    scores = [assistant.checker.score(r["claim"], v, by_title[r["title"]])[0] for r, v in zip(rows, vectors)]
    per_claim_ms = (time.perf_counter() - started) * 1000 / max(len(rows), 1)
    predicted = [s >= assistant.settings.min_support for s in scores]
    labels = [bool(r["supported"]) for r in rows]
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        by_kind[kind] = m.mean([float(predicted[i] == labels[i]) for i in idx])
    return {"threshold": assistant.settings.min_support, "n": len(rows), **m.binary_scores(labels, predicted),
            "accuracy_by_kind": by_kind, "ms_per_claim_warm": per_claim_ms,
            "errors": [{"id": r["id"], "kind": r["kind"], "score": s} for r, s, p, y in
                       zip(rows, scores, predicted, labels) if p != y]}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except OSError:
        return ""


def run(
    settings: Settings,
    only: str | None = None,
    limit: int | None = None,
    ids: tuple[str, ...] | None = None,
    baselines: tuple[str, ...] = BASELINES,
    progress: bool = True,
    assistant: Assistant | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    """The whole suite; returns the results dict (see write_results)."""
    assistant = assistant or Assistant.from_settings(settings)
    every = load_questions()
    questions = select(every, only, limit, ids)
    log(f"eval: {len(questions)} questions, baselines: {', '.join(baselines) or 'none'}")
    results: dict[str, Any] = {
        "stamp": {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _git_commit(),
                  "index_fingerprint": assistant.fingerprint, "model": assistant.chat_model.name,
                  "machine": f"{platform.machine()} {platform.processor() or ''} cpus={__import__('os').cpu_count()}",
                  "settings": json.loads(assistant.settings.model_dump_json()),
                  "questions": len(questions), "only": only, "limit": limit},
        # Retrieval is cheap: always measured on the whole question set.
        "retrieval": {"ours": eval_retrieval(assistant, every, "hybrid")},
        "answers": {},
        "checker": eval_checker(assistant),
    }
    for mode in ("bm25", "dense"):
        if mode in baselines:
            results["retrieval"][mode] = eval_retrieval(assistant, every, mode)
    ours = run_ours(assistant, questions, progress)
    results["answers"]["ours"] = {"summary": summarise_answers(ours), "rows": ours}
    if "citation_engine" in baselines:
        rows = run_citation_engine(assistant, questions, progress)
        results["answers"]["citation_engine"] = {"summary": summarise_answers(rows), "rows": rows}
    return results


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
