"""One question's outcome -> its verdicts, and a system's rows -> its summary. Pure arithmetic over
plain data (the checker's verdicts on draft claims come in as booleans); table-driven tests cover it.

Correctness (strict):
- a question that expects the refusal is right when the answer reads as a refusal;
- a "which papers" (`list`) question is right when the answer cites >= 0.8 of the complete gold set
  at gold precision >= 0.8;
- any other answerable question is right when the answer is not a refusal, holds every needle as a
  whole token (`metrics.has_needle`), cites at least one gold paper, and shows no forbidden text.
"""

from __future__ import annotations

from typing import Any

from . import metrics as m
from .questions import KINDS, Question

LOWER_IS_BETTER = frozenset({
    "false_abstention", "discarded_correct", "prompt_leaks", "mid_sentence", "markup_residue",
    "quantity_without_number",
})
MULTI_KINDS = ("multi", "list")


def final_correct(q: Question, answer: str, cited: list[str], abstained: bool, leaked: bool) -> bool:
    """Whether an answer (or a draft) is right for the question, by the rules in the module docstring."""
    if q.expects_abstention:
        return abstained and not leaked
    if abstained or leaked:
        return False
    if q.kind == "list":
        return m.list_correct(cited, q.gold)
    return m.has_all_needles(answer, q.must_contain) and (not q.gold or bool(set(cited) & q.gold))


def score_row(
    q: Question, answer: str, cited: list[str], draft: str, draft_cited: list[str], abstained: bool,
    draft_supported: list[bool], system_prompt: str,
) -> dict[str, Any]:
    """Every per-question verdict of one system."""
    leaked = m.leaks_prompt(answer, system_prompt) or not m.contains_none(answer, q.forbidden)
    correct = final_correct(q, answer, cited, abstained, leaked)
    draft_right = bool(draft) and not q.expects_abstention and final_correct(q, draft, draft_cited, False, False)
    answered = not abstained
    return {
        "correct": correct,
        "abstained": abstained,
        "expected_abstain": q.expects_abstention,
        "leaked": leaked,
        "gold_precision": m.gold_precision(cited, q.gold) if q.gold and answered else None,
        "gold_recall": (m.gold_recall(cited, q.gold) if answered else 0.0) if q.gold else None,
        "draft_correct": draft_right,
        "discarded_correct": draft_right and not correct,
        "draft_supported": draft_supported,
        "mid_sentence": answered and m.ends_mid_sentence(answer),
        "markup_residue": answered and (m.has_markup(answer) or m.has_passage_label(answer)),
        "quantity_without_number": answered and q.kind == "quantity" and not m.has_number(answer),
    }


def _latency(rows: list[dict[str, Any]], stage: str, answered_only: bool = False) -> dict[str, float | None]:
    values = [r["timings_ms"][stage] for r in rows if stage in r["timings_ms"] and not r.get("replayed")
              and (not answered_only or not r["abstained"])]
    return {"p50": m.percentile(values, 50), "p95": m.percentile(values, 95), "n": len(values)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A system's figures over its rows: correctness, gold citations and correctness per kind,
    draft faithfulness, discarded_correct, abstention, leaks, answer form and latency."""
    answerable = [r for r in rows if not r["expected_abstain"]]
    unanswerable = [r for r in rows if r["expected_abstain"]]
    multi = [r for r in rows if r["kind"] in MULTI_KINDS]
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    abst = m.abstention_scores([r["expected_abstain"] for r in rows], [r["abstained"] for r in rows])
    per_kind = {
        k: {
            "n": sum(r["kind"] == k for r in rows),
            "correct": m.mean([float(r["correct"]) for r in rows if r["kind"] == k]),
            "gold_precision": m.mean([r["gold_precision"] for r in rows if r["kind"] == k]),
            "gold_recall": m.mean([r["gold_recall"] for r in rows if r["kind"] == k]),
        }
        for k in kinds
    }
    return {
        "n": len(rows),
        "answer_accuracy": m.mean([float(r["correct"]) for r in answerable]),
        "accuracy_all": m.mean([float(r["correct"]) for r in rows]),
        "gold_precision": m.mean([r["gold_precision"] for r in rows]),
        "gold_recall": m.mean([r["gold_recall"] for r in rows]),
        "gold_precision_multi": m.mean([r["gold_precision"] for r in multi]),
        "gold_recall_multi": m.mean([r["gold_recall"] for r in multi]),
        "faithfulness_draft": m.mean([float(ok) for r in rows for ok in r["draft_supported"]]),
        "discarded_correct": m.mean([float(r["discarded_correct"]) for r in answerable]),
        "discarded_ids": [r["id"] for r in rows if r["discarded_correct"]],
        "abstention_on_unanswerable": m.mean([float(r["abstained"]) for r in unanswerable]),
        "false_abstention": abst["false_abstention"],
        "prompt_leaks": sum(r["leaked"] for r in rows),
        "mid_sentence": sum(r["mid_sentence"] for r in rows),
        "markup_residue": sum(r["markup_residue"] for r in rows),
        "quantity_without_number": sum(r["quantity_without_number"] for r in rows),
        "by_kind": per_kind,
        "latency_ms": {"total": _latency(rows, "total"), "answered_total": _latency(rows, "total", True),
                       "first_token": _latency(rows, "first_token")},
        "replayed": sum(bool(r.get("replayed")) for r in rows),
        "tokens": {k: sum((r.get("usage") or {}).get(k, 0) for r in rows) for k in ("prompt_tokens", "completion_tokens")},
    }


def failing(summary: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds a summary misses: lower-is-better metrics must not exceed theirs, the others
    must reach theirs; a metric with no value (nothing to measure) fails too."""
    missed = []
    for name, bound in thresholds.items():
        value = summary.get(name)
        if value is None:
            missed.append(f"{name}: not measured (threshold {bound})")
        elif name in LOWER_IS_BETTER and value > bound:
            missed.append(f"{name} = {value:.3f} > {bound}")
        elif name not in LOWER_IS_BETTER and value < bound:
            missed.append(f"{name} = {value:.3f} < {bound}")
    return missed
