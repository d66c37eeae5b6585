"""Eval metrics as pure functions over plain data; no model, no store. Table-driven tests cover them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from assistant.text import CITATION_MARK


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


def contains_none(text: str, needles: Sequence[str]) -> bool:
    """True when no needle occurs in the text, case-insensitively."""
    low = text.lower()
    return not any(n.lower() in low for n in needles)


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
    return float(np.percentile(values, q)) if len(values) else None

def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None if there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def leaks_prompt(answer: str, prompt: str, window: int = 40) -> bool:
    """True when any `window`-character stretch of the prompt appears in the answer (case-insensitive)."""
    low, text = answer.lower(), " ".join(prompt.lower().split())
    return any(text[i : i + window] in low for i in range(0, max(len(text) - window, 0) + 1, 10))


# --- strict correctness -------------------------------------------------------------------------
#
# Needle rule (stated here and tested in tests/test_metrics.py):
# - Text and needle are NFKC-normalised and compared case-insensitively.
# - A needle that is a number ("67.6", "1,000", "96.0%") matches only a whole number in the text:
#   "67.6" does not match "167.6" or "67.65"; "9" does not match "2019" or "9.5". Thousands
#   separators are ignored on both sides ("1,000" matches "1000"). A trailing "%" in the needle
#   must be present in the text, with or without a space before it ("96.0%" matches "96.0 %",
#   not "96.0" and not "96%"); a needle without "%" also matches the number followed by "%".
# - Any other needle matches as whole words ("LOLA" does not match "LOLAs" or "Lolapalooza"),
#   with runs of whitespace equal.

_NUMBER_NEEDLE = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?%?$|^\d+(?:\.\d+)?%?$")


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _number_pattern(needle: str) -> str:
    percent = needle.endswith("%")
    digits = needle.rstrip("%").replace(",", "")
    whole, _, frac = digits.partition(".")
    # The integer part may be written with thousands separators in the text.
    grouped = "".join(
        (",?" if i and (len(whole) - i) % 3 == 0 else "") + re.escape(ch) for i, ch in enumerate(whole)
    )
    body = grouped + (r"\." + re.escape(frac) if frac else "")
    tail = r"\s?%" if percent else ""
    return rf"(?<![\d.,])(?<!\d[.,]){body}(?![\d])(?![.,]\d){tail}"


def has_needle(text: str, needle: str) -> bool:
    """True when `needle` occurs in `text` under the whole-token rule above."""
    hay, nee = _normalise(text), _normalise(needle)
    if not nee:
        return True
    if _NUMBER_NEEDLE.match(nee):
        return re.search(_number_pattern(nee), hay) is not None
    words = [re.escape(w) for w in nee.split(" ")]
    return re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", hay) is not None


def has_all_needles(text: str, needles: Sequence[str]) -> bool:
    """True when every needle occurs in the text (whole tokens)."""
    return all(has_needle(text, n) for n in needles)


# --- citations against gold papers (no checker involved) ----------------------------------------


def gold_precision(cited: Sequence[str], gold: set[str]) -> float | None:
    """Cited papers that are gold / cited papers; None when nothing is cited."""
    papers = set(cited)
    return len(papers & gold) / len(papers) if papers else None


def gold_recall(cited: Sequence[str], gold: set[str]) -> float | None:
    """Gold papers cited / gold papers; None for a question without gold papers."""
    return len(set(cited) & gold) / len(gold) if gold else None


def list_correct(cited: Sequence[str], gold: set[str], floor: float = 0.8) -> bool:
    """A list answer is right when it cites >= `floor` of the gold set at precision >= `floor`."""
    precision, recall = gold_precision(cited, gold), gold_recall(cited, gold)
    return precision is not None and recall is not None and precision >= floor and recall >= floor


# --- the one refusal reader ---------------------------------------------------------------------

_NON_ANSWER = re.compile(
    r"\b(abstracts?|papers?|text|context|information|sources?|documents?|passages?|collection)\b.{0,60}"
    r"\b(do(es)? not|don't|doesn't|not|no|never)\b.{0,40}"
    r"\b(mention|contain|provide|state|say|specify|answer|include|report|discuss|given|available|address|cover)"
    r"|\b(cannot|can't|can not|unable to)\b.{0,30}\b(answer|find|determine|provide|tell)"
    r"|\bno (information|mention|details?|data)\b|\bnot (mentioned|provided|specified|stated|available)\b"
    r"|\bi'?m sorry\b|\bi apologi[sz]e\b",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\[[^\]]{0,40}\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def reads_as_refusal(text: str, refusal: str) -> bool:
    """The one reader of refusals, for every system: an empty answer, the assistant's refusal
    phrase, or an answer whose every sentence only says the sources do not answer."""
    bare = _MARKER.sub(" ", text).strip()
    if not bare or refusal.lower().rstrip(".") in bare.lower():
        return True
    sentences = [s for s in _SENTENCE_END.split(bare) if re.search(r"\w", s)]
    return bool(sentences) and all(_NON_ANSWER.search(s) for s in sentences)


# --- answer form --------------------------------------------------------------------------------

_MARKUP = re.compile(
    r"\\[%&#_${}]|\\[A-Za-z]{2,}|\$[^$\n]{1,80}\$|(?<![A-Za-z])x20[0-9a-fA-F]{2}(?![0-9a-fA-F])|\^\{|_\{"
)
_LABEL = re.compile(r"(^|\n|\s)(Title|Abstract)\s*:", re.IGNORECASE)
_END = re.compile(r"[.!?)\"'\u201d\u3002]$")


def has_markup(text: str) -> bool:
    """LaTeX or encoding residue: \\%, \\times, $...$, x2013, ^{...}."""
    return _MARKUP.search(text) is not None


def has_passage_label(text: str) -> bool:
    """The prompt's passage label ("Title:") copied into the answer."""
    return _LABEL.search(text) is not None


def ends_mid_sentence(text: str) -> bool:
    """True when the answer (after its trailing citation markers) does not end a sentence."""
    tail = re.sub(r"(\s*(?:[,;]|and)?\s*\[[^\]]{0,40}\])+(?=\s*[.!?]?\s*$)", "", text.strip()).rstrip()
    return bool(tail) and _END.search(tail) is None


def has_number(text: str) -> bool:
    """True when the text holds a figure (digits, outside citation markers)."""
    return re.search(r"\d", CITATION_MARK.sub("", text)) is not None
