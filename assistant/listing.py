"""Questions that ask for papers ("which papers ...") -> one checked item per paper that fits.

A small model cannot be trusted to enumerate, so nothing here asks it to: a larger candidate pool
comes from retrieval (dense and BM25 both contribute), and each candidate's abstract is judged
against what the question asks for (the question without its "which papers" lead) by `ListJudge`.
Measured on the dev split's list questions (see evals/README.md), the chat model as a per-paper
YES/NO judge was right on 12 of 19 candidates and cost seconds each, so the judge is the
embedding and word-rarity score alone. Does not write prose.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from .config import SupportSettings
from .grounding import numbers_in, semantic_support, tidy
from .sentences import SentenceIndex
from .text import content_words
from .types import ListItem, Paper, Passage

_ITEMS = r"(?:papers|works|studies|articles|abstracts|publications|surveys|reviews)"
LIST_QUESTION = re.compile(
    r"^\W*(?:(?:so|and|also|now|then|ok(?:ay)?)\W+)?(?:which|what|list|name|find|show(?: me)?|give(?: me)?)\b"
    rf"(?:[^?.]{{0,40}}?\b{_ITEMS}\b|[^?.]{{0,80}}?\b(?:in|of|from) (?:the|this|your) (?:collection|corpus)\b)"
    rf"|\bwhat work\b|\b(?:list|name) (?:all |the |every )?{_ITEMS}\b",
    re.IGNORECASE,
)
LEAD = re.compile(
    r"^\W*(?:(?:so|and|also|now|then|ok(?:ay)?)\W+)?(?:which|what|list|name|find|show(?: me)?|give(?: me)?)\s+"
    r"(?:(?:all|the|every|of the)\s+)*(?:other\s+)?(?:papers|works?|studies|articles|abstracts|publications)"
    r"(?:\s+(?:in|of|from)\s+the\s+(?:collection|corpus|set|abstracts|list))?\s*(?:that|which|who|are|is|do|does|have|has)?\s+",
    re.IGNORECASE,
)


def is_list_question(question: str) -> bool:
    """True when the question asks which papers (works, studies, abstracts) fit a description."""
    return LIST_QUESTION.search(question) is not None


_WHICH = re.compile(r"^\W*(?:which|what|list|name|find)\s+", re.IGNORECASE)
_WHERE = re.compile(r"\s*\b(?:in|of|from) (?:the|this|your) (?:collection|corpus)\b", re.IGNORECASE)


def criterion(question: str) -> str:
    """What a paper must be or do to belong in the list: the question without its lead
    ("Which papers in the collection ...") and without "in the collection"."""
    text = question.strip()
    body = LEAD.sub("", text, count=1)
    if body == text:
        body = _WHICH.sub("", text, count=1)
    body = _WHERE.sub("", body).rstrip(" ?")
    return body if content_words(body) else question


class ListJudge:
    """Judges candidates against a list question, weighting words by how rare they are in the corpus.

    fit = 0.3 x similarity (mean cosine of the abstract's two sentences closest to the criterion, scaled
    as the checker scales cosines) + 0.55 x share of the criterion's words the title and abstract use,
    weighted by inverse document frequency, + 0.15 x the same share for the title alone. Candidates at
    or above `min_fit` are cut at the largest drop in fit among the first `max_items` (at least two are
    kept when two pass), so a clear group of fitting papers is listed and the long tail is not. Each
    paper's quote is the sentence with the highest cosine plus weighted share of the criterion's words.
    """

    def __init__(self, papers: Mapping[str, Paper], sentences: SentenceIndex, weights: SupportSettings | None = None) -> None:
        self.papers = papers
        self.sentences = sentences
        self.weights = weights or SupportSettings()
        self.unseen = math.log(len(papers) + 1) + 1

    @cached_property
    def idf(self) -> dict[str, float]:
        """Inverse document frequency of every content word, counted on the first list question
        rather than at start-up (a pass over every abstract)."""
        df: Counter[str] = Counter()
        for paper in self.papers.values():
            df.update(content_words(f"{paper.title} {paper.abstract}"))
        return {w: math.log((len(self.papers) + 1) / (n + 1)) + 1 for w, n in df.items()}

    def _weighted(self, want: set[str], have: set[str]) -> float:
        total = sum(self.idf.get(w, self.unseen) for w in want)
        return sum(self.idf.get(w, self.unseen) for w in want & have) / total if total else 0.0

    def fit(self, want: str, vector: np.ndarray, paper: Paper, figures: bool = False) -> tuple[float, str]:
        """(fit in [0, 1], the abstract sentence closest to what the question asks for); with `figures`, the
        quote is a sentence with a figure when the abstract has one."""
        ev = self.sentences.evidence(paper)
        cosines = ev.vectors @ vector
        closest = float(np.sort(cosines)[-2:].mean())
        words = content_words(want)
        # the quote: the sentence closest in meaning that also uses the criterion's (rare) words
        shown = [float(c) + self._weighted(words, content_words(s)) for c, s in zip(cosines, ev.clean_sentences)]
        if figures and any(numbers_in(s) for s in ev.clean_sentences[1:]):
            shown = [v if numbers_in(s) else -1.0 for v, s in zip(shown, ev.clean_sentences)]
        best = int(np.argmax(shown[1:]) + 1) if len(shown) > 1 else 0
        semantic = semantic_support(closest, self.weights)
        fit = 0.3 * semantic + 0.55 * self._weighted(words, content_words(ev.full_text)) \
            + 0.15 * self._weighted(words, content_words(paper.title))
        return round(fit, 4), ev.clean_sentences[best]

    def items(
        self, question: str, candidates: list[Passage], min_fit: float, max_items: int
    ) -> tuple[list[ListItem], list[tuple[str, float]]]:
        """(the papers that fit, best first; every candidate's (paper id, fit) for the record)."""
        want = criterion(question)
        vector = self.sentences.embedder.embed([want])[0]
        scored = sorted(
            ((*self.fit(want, vector, self.papers[p.paper_id]), p.paper_id) for p in candidates
             if p.paper_id in self.papers),
            reverse=True,
        )
        fits = [fit for fit, _, _ in scored]
        keep = min(cut_at_largest_drop(fits, max_items), sum(fit >= min_fit for fit in fits))
        items = [ListItem(key=str(n), paper_id=pid, title=self.papers[pid].title, quote=tidy(quote),
                          support=min(fit, 1.0))
                 for n, (fit, quote, pid) in enumerate(scored[:keep], start=1)]
        return items, [(pid, fit) for fit, _, pid in scored]


def cut_at_largest_drop(fits: list[float], max_items: int) -> int:
    """How many of the (descending) fits to keep: up to the largest drop between neighbours within the
    first `max_items` + 1, keeping at least two when two are there."""
    if len(fits) <= 2 or max_items <= 2:
        return min(len(fits), max_items)
    last = min(max_items, len(fits) - 1)
    return max(range(2, last + 1), key=lambda i: fits[i - 1] - fits[i])


def render_list(items: list[ListItem]) -> str:
    """The list answer as text: one paper per line, key, title and the sentence that shows it fits."""
    return "\n".join(f"[{i.key}] {i.title}: \u201c{i.quote.rstrip()}\u201d" for i in items)
