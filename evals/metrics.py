"""Eval metrics as pure functions over plain data; no model, no store. Table-driven tests cover them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def hit_at_k(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """1.0 if any gold id is in the top k, else 0.0."""
    return 1.0 if gold & set(ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """Share of gold ids found in the top k (1.0 when there is no gold)."""
    if not gold:
        return 1.0
    return len(gold & set(ranked[:k])) / len(gold)


def reciprocal_rank(ranked: Sequence[str], gold: set[str]) -> float:
    """1/rank of the first gold id, 0.0 if none is ranked."""
    for rank, item in enumerate(ranked, start=1):
        if item in gold:
            return 1.0 / rank
    return 0.0


def contains_all(text: str, needles: Sequence[str]) -> bool:
    """True when every needle occurs in the text, case-insensitively."""
    low = text.lower()
    return all(n.lower() in low for n in needles)


def contains_none(text: str, needles: Sequence[str]) -> bool:
    """True when no needle occurs in the text, case-insensitively."""
    low = text.lower()
    return not any(n.lower() in low for n in needles)


def citation_recall(claims_supported: Sequence[bool]) -> float | None:
    """ALCE citation recall: share of claims whose citations support them (None with no claims)."""
    return sum(claims_supported) / len(claims_supported) if claims_supported else None


def citation_precision(citations_supporting: Sequence[bool]) -> float | None:
    """ALCE citation precision: share of citations that support the claim they are attached to."""
    return sum(citations_supporting) / len(citations_supporting) if citations_supporting else None


def abstention_scores(expected_abstain: Sequence[bool], abstained: Sequence[bool]) -> dict[str, float | None]:
    """Precision/recall of abstaining, and the false-abstention rate on answerable questions."""
    tp = sum(e and a for e, a in zip(expected_abstain, abstained))
    fp = sum((not e) and a for e, a in zip(expected_abstain, abstained))
    fn = sum(e and (not a) for e, a in zip(expected_abstain, abstained))
    answerable = sum(not e for e in expected_abstain)
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "false_abstention": fp / answerable if answerable else None,
    }


def binary_scores(labels: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float | None]:
    """Precision, recall, accuracy and balanced accuracy of predicting True."""
    tp = sum(y and p for y, p in zip(labels, predicted))
    tn = sum((not y) and (not p) for y, p in zip(labels, predicted))
    fp = sum((not y) and p for y, p in zip(labels, predicted))
    fn = sum(y and (not p) for y, p in zip(labels, predicted))
    tpr = tp / (tp + fn) if tp + fn else None
    tnr = tn / (tn + fp) if tn + fp else None
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tpr,
        "specificity": tnr,
        "accuracy": (tp + tn) / len(labels) if labels else None,
        "balanced_accuracy": (tpr + tnr) / 2 if tpr is not None and tnr is not None else None,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None if there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def leaks_prompt(answer: str, prompt: str, window: int = 40) -> bool:
    """True when any `window`-character stretch of the prompt appears in the answer (case-insensitive)."""
    low, text = answer.lower(), " ".join(prompt.lower().split())
    return any(text[i : i + window] in low for i in range(0, max(len(text) - window, 0) + 1, 10))
