"""results dict -> one self-contained HTML page (Jinja2, autoescaped): every metric of every system,
correctness and gold citations per kind, the discarded-correct cases with draft and final answer side
by side, retrieval, the checker, latency histograms and every question. No scripts, no external files."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .questions import KINDS
from .scoring import LOWER_IS_BETTER

HEADLINE = (
    "answer_accuracy", "gold_precision", "gold_recall", "gold_precision_multi", "gold_recall_multi",
    "faithfulness_draft", "discarded_correct", "abstention_on_unanswerable", "false_abstention", "prompt_leaks",
    "mid_sentence", "markup_residue", "quantity_without_number", "accuracy_all",
)


def fmt(value: Any) -> str:
    """A metric as text: 3 decimals for fractions, '–' for nothing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def delta(now: Any, before: Any, name: str) -> tuple[str, str]:
    """(css class, text) of the change since the previous run; better is green whichever way it goes."""
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)) or now == before:
        return "", ""
    better = (now < before) if name in LOWER_IS_BETTER else (now > before)
    return ("up" if better else "down"), f"{'▲' if now > before else '▼'} {abs(now - before):.3f}"


def histogram(values: list[float], bins: int = 12, width: int = 360, height: int = 110) -> dict[str, Any] | None:
    """Bar geometry of a latency histogram (seconds), for the template to draw as SVG."""
    if not values:
        return None
    secs = [v / 1000 for v in values]
    lo, hi = min(secs), max(secs)
    step = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for s in secs:
        counts[min(int((s - lo) / step), bins - 1)] += 1
    top = max(counts)
    bw = width // bins
    bars = [{"x": i * bw, "w": bw - 2, "h": int(height * c / top), "y": height - int(height * c / top)}
            for i, c in enumerate(counts)]
    return {"bars": bars, "lo": f"{lo:.1f}", "hi": f"{hi:.1f}", "width": width, "height": height}


def render_html(results: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The full report page."""
    env = Environment(loader=PackageLoader("evals", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = fmt
    answers = results["answers"]
    prev = (previous or {}).get("answers", {})
    table = [
        {"name": key, "cells": [{"value": fmt(d["summary"].get(key)),
                                 "delta": delta(d["summary"].get(key), prev.get(n, {}).get("summary", {}).get(key), key)}
                                for n, d in answers.items()]}
        for key in HEADLINE
    ]
    kinds = [k for k in KINDS if any(k in d["summary"].get("by_kind", {}) for d in answers.values())]
    by_id = {n: {r["id"]: r for r in d["rows"]} for n, d in answers.items()}
    first = next(iter(answers.values()), {"rows": []})
    discarded = [r for d in answers.values() for r in d["rows"] if r.get("discarded_correct")]
    latency = {n: histogram([r["timings_ms"]["total"] for r in d["rows"]
                             if "total" in r["timings_ms"] and not r.get("replayed")]) for n, d in answers.items()}
    return env.get_template("report.html.j2").render(
        stamp=results["stamp"], previous=(previous or {}).get("stamp"), systems=list(answers), table=table,
        kinds=kinds, answers=answers, discarded=discarded, retrieval=results.get("retrieval", {}),
        checker=results.get("checker", {}), latency=latency, questions=first["rows"], by_id=by_id,
    )
