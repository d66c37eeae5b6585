"""Draft -> Answer: citation keys resolved to papers, each claim checked against its cited abstract.

A claim is one sentence of the draft. Its support for a cited abstract combines the best
sentence-level embedding similarity with lexical evidence, and is zero when a number or a named
method of the claim appears nowhere in that abstract. Keys the prompt never offered are dropped;
a citation whose abstract does not support its claim moves to a packed abstract that does, or
is dropped; unsupported claims are flagged and (by default) removed from the shown answer. If
nothing supported remains, the answer abstains with the one refusal phrase. The scoring
functions are pure; the embedder is passed in. Does not call the chat model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from .answering import REFUSAL
from .retrieval import SentenceIndex
from .text import content_words, split_sentences
from .types import Answer, Citation, Claim, Draft, Paper

KEY_GROUP = re.compile(r"\[\s*(?:(?:source|abstract|paper)\s*)?(\d+(?:\s*[,;]\s*(?:(?:source|abstract|paper)\s*)?\d+)*)\s*\]", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)*(?:\.\d+)?")
NAMED = re.compile(r"\b(?=[A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*[A-Z0-9])[A-Za-z][A-Za-z0-9-]*[A-Z0-9][A-Za-z0-9-]*\b")
COSINE_FLOOR, COSINE_SPAN = 0.35, 0.45  # MiniLM cosines below ~0.35 are unrelated text
EMBED_WEIGHT = 0.55


def _norm_number(token: str) -> str:
    return token.replace(",", "").rstrip(".").lstrip("0") or "0"


def numbers_in(text: str) -> set[str]:
    """Numbers written in `text`, normalised (thousands separators and leading zeros removed)."""
    return {_norm_number(t) for t in NUMBER.findall(text)}


def named_terms(text: str) -> set[str]:
    """Method-like names: words with an inner capital or digit, such as PARSeq, BERT-PLM, GPT-4."""
    return {t.lower() for t in NAMED.findall(text)}


def strip_keys(text: str) -> str:
    """Text without citation markers."""
    text = re.sub(r"\s{2,}", " ", KEY_GROUP.sub("", text))
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


def lexical_support(claim: str, evidence: str) -> float:
    """Share of the claim's content words found in the evidence."""
    words = content_words(claim)
    if not words:
        return 0.0
    return len(words & content_words(evidence)) / len(words)


def missing_facts(claim: str, evidence: str, question: str = "") -> set[str]:
    """Numbers and named methods of the claim that the evidence never states.

    A name the question itself used ("permutation-LM") is the user's wording, not a claim; a
    number from the question still counts, so a false premise ("only 50%") is never confirmed.
    """
    ev_numbers = numbers_in(evidence)
    ev_lower = evidence.lower()
    asked = named_terms(question)
    missing = {n for n in numbers_in(claim) if n not in ev_numbers}
    missing |= {t for t in named_terms(claim) - asked if t not in ev_lower and t.replace("-", " ") not in ev_lower}
    return missing


def combine(best_cosine: float, lexical: float, missing: set[str]) -> float:
    """Support in [0, 1] from the best sentence cosine and lexical overlap; zero if a fact is missing."""
    if missing:
        return 0.0
    semantic = min(max((best_cosine - COSINE_FLOOR) / COSINE_SPAN, 0.0), 1.0)
    return round(EMBED_WEIGHT * semantic + (1 - EMBED_WEIGHT) * lexical, 4)


class SupportChecker:
    """Scores claims against abstracts, using the sentence vectors the retrieval stage caches."""

    def __init__(self, sentences: SentenceIndex) -> None:
        self.sentences = sentences

    def score(self, claim: str, claim_vector: np.ndarray, paper: Paper, question: str = "") -> tuple[float, str]:
        """(support, best quote) of `claim` by `paper`'s abstract."""
        ev = self.sentences.evidence(paper)
        cosines = ev.vectors @ claim_vector
        best = int(np.argmax(cosines[1:]) + 1) if len(cosines) > 1 else 0
        support = combine(float(cosines.max()), lexical_support(claim, ev.full_text), missing_facts(claim, ev.full_text, question))
        return support, ev.raw_sentences[best]

    def claim_vectors(self, claims: list[str]) -> np.ndarray:
        """Vectors of the claims (citation markers removed)."""
        return self.sentences.embedder.embed(claims)


NOT_STATED = re.compile(
    r"\b(abstracts?|papers?|text|context|information)\b.{0,60}\b(do(es)? not|don't|doesn't|not|no)\b.{0,40}"
    r"\b(mention|contain|provide|state|say|specify|answer|include|report|discuss|given|available)",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """True when the draft declines to answer."""
    low = text.lower()
    return REFUSAL.lower().rstrip(".") in low or "do not answer this question" in low or not strip_keys(text)


def says_not_stated(claim: str) -> bool:
    """True for sentences like 'The abstracts do not mention X': a non-answer, never a supported claim."""
    return bool(NOT_STATED.search(claim))


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of the draft, each with the integer keys it cites (in order, no repeats).

    A run of markers that opens a sentence belongs to the sentence before it, unless it is the
    sentence's subject ("[2] reports ...").
    """
    sentences = split_sentences(text.replace("\n", " "))
    claims: list[tuple[str, list[int]]] = []
    for sentence in sentences:
        lead = re.match(r"^((?:\s*\[[^\]]*\])+)\s*", sentence)
        rest = sentence[lead.end() :] if lead else ""
        if lead and claims and not rest[:1].islower():  # "[2] reports ..." keeps its subject
            prev_text, prev_keys = claims[-1]
            claims[-1] = (prev_text, prev_keys + [k for k in _keys(lead.group(1)) if k not in prev_keys])
            sentence = sentence[lead.end() :]
        if strip_keys(sentence):
            claims.append((sentence, _keys(sentence)))
    return claims


def _keys(text: str) -> list[int]:
    keys: list[int] = []
    for group in KEY_GROUP.findall(text):
        for part in re.findall(r"\d+", group):
            if int(part) not in keys:
                keys.append(int(part))
    return keys


def relabel(sentence: str, shown: dict[int, str], extra: list[str]) -> str:
    """The sentence with each prompt key replaced in place by its shown label (or removed), and
    `extra` labels (citations moved here) added before the final punctuation."""

    def swap(match: re.Match[str]) -> str:
        labels = dict.fromkeys(shown[int(k)] for k in re.findall(r"\d+", match.group(1)) if int(k) in shown)
        return "".join(f"[{label}]" for label in labels)

    body = re.sub(r"\s{2,}", " ", KEY_GROUP.sub(swap, sentence)).strip()
    body = re.sub(r"\s+([.,;:!?])", r"\1", body)
    missing = [label for label in extra if f"[{label}]" not in body]
    if not missing:
        return body
    marks = "".join(f"[{label}]" for label in missing)
    if body and body[-1] in ".!?":
        return f"{body[:-1]} {marks}{body[-1]}"
    return f"{body} {marks}"


Verify = Callable[[str, Paper], bool]


def ground(
    draft: Draft,
    papers: dict[str, Paper],
    checker: SupportChecker,
    min_support: float,
    drop_unsupported: bool,
    verify: Verify | None = None,
    question: str = "",
) -> Answer:
    """Resolve keys, check every claim, and build the Answer (abstaining if nothing is supported).

    `verify`, when given (the LLM judge), must also accept each (claim, paper) the checker accepts.
    """
    passages = draft.passages
    base = Answer(question="", answer=REFUSAL, abstained=True, passages=passages, model=draft.model, usage=draft.usage)
    if is_refusal(draft.text):
        return base
    parsed = split_claims(draft.text)
    if not parsed:
        return base
    texts = [strip_keys(s) for s, _ in parsed]
    vectors = checker.claim_vectors(texts)
    packed_papers = [papers[p.paper_id] for p in passages if p.paper_id in papers]
    labels: dict[str, str] = {}  # paper_id -> shown key, in order of first use
    quotes: dict[str, tuple[float, str]] = {}
    claims: list[Claim] = []
    shown: list[str] = []
    for (sentence, keys), text, vector in zip(parsed, texts, vectors):
        cited = [passages[k - 1].paper_id for k in keys if 1 <= k <= len(passages)]  # invented keys vanish here
        scored = {pid: checker.score(text, vector, papers[pid], question) for pid in dict.fromkeys(cited) if pid in papers}
        kept = [pid for pid, (s, _) in scored.items() if s >= min_support and (verify is None or verify(text, papers[pid]))]
        if says_not_stated(text):
            scored, kept = {}, []
        elif not kept:  # move the citation to a packed abstract that does support the claim, if any
            alternatives = {p.id: checker.score(text, vector, p, question) for p in packed_papers if p.id not in scored}
            best = max(alternatives.items(), key=lambda kv: kv[1][0], default=None)
            if best and best[1][0] >= min_support and (verify is None or verify(text, papers[best[0]])):
                scored[best[0]] = best[1]
                kept = [best[0]]
        support = max((scored[pid][0] for pid in kept), default=max((s for s, _ in scored.values()), default=0.0))
        supported = bool(kept)
        for pid in kept:
            labels.setdefault(pid, str(len(labels) + 1))
            if pid not in quotes or scored[pid][0] > quotes[pid][0]:
                quotes[pid] = scored[pid]
        claim_labels = [labels[pid] for pid in kept]
        claims.append(Claim(text=text, citations=claim_labels, supported=supported, support=min(support, 1.0)))
        if supported or not drop_unsupported:
            in_place = {k: labels[passages[k - 1].paper_id] for k in keys
                        if 1 <= k <= len(passages) and passages[k - 1].paper_id in kept}
            shown.append(relabel(sentence, in_place, claim_labels))
    if not any(c.supported for c in claims):
        return base.model_copy(update={"claims": claims})
    citations = [
        Citation(key=label, paper_id=pid, title=papers[pid].title, quote=quotes[pid][1], support=min(quotes[pid][0], 1.0))
        for pid, label in labels.items()
    ]
    return base.model_copy(update={"answer": " ".join(shown), "abstained": False, "citations": citations, "claims": claims})
