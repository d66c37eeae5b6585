"""Draft -> Answer: citation keys resolved to papers, each claim checked against what it cites.

A claim is one sentence of the draft. Its support by a set of abstracts combines the best
sentence-level embedding similarity with lexical evidence, and is zero when a number or a named
method of the claim appears in none of them (a name the question used counts only when exactly one
packed abstract uses it: then it is that paper's). A sentence is supported when the abstracts it
cites, taken together, support it (ALCE's rule); a citation is dropped only when it supports nothing
on its own and removing it loses nothing. A sentence whose subject is its citations ("[1] and [2]
study X") is a claim about each of them, so each must support it alone. Keys the prompt never
offered are dropped; a claim none of its citations supports moves to a packed abstract that does
(an uncited one to one or two that do together), keeps its supported clauses, or is flagged and
(by default) removed. If nothing supported remains, the answer abstains with the one refusal
phrase. The scoring functions are pure; the embedder is passed in. Does not call the chat model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .answering import REFUSAL
from .config import SupportSettings
from .corpus import clean_text
from .sentences import SentenceIndex
from .text import asks_for_number, content_words, named_terms, split_sentences
from .types import Answer, Citation, Claim, Draft, Paper

KEY_GROUP = re.compile(r"\[\s*(?:(?:source|abstract|paper)\s*)?(\d+(?:\s*[,;]\s*(?:(?:source|abstract|paper)\s*)?\d+)*)\s*\]", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)*(?:\.\d+)?")
# A sentence that opens with its citations as subject: "[1] and [2] study ...", "[3], [4] report ...".
SUBJECT = re.compile(r"^\s*((?:\[[^\]]*\]\s*(?:,|;|and|&)?\s*)+)(?=[a-z])")
WH_QUESTION = re.compile(r"(?:^|[.!?:]\s+)\W*(?:what|which|who|whom|whose|when|where|why|how)\b", re.IGNORECASE)
LABEL = re.compile(r"\b(?:Title|Abstract)\s*:\s*", re.IGNORECASE)
# Wordy citation forms a model writes: "(Abstract [1])", "(see [2])", "abstract [1]", "Sources [1] and [3]".
_WORDY_MARK = re.compile(r"\(\s*(?:see\s+)?(?:(?:the\s+)?(?:abstracts?|sources?|papers?)\s*)?"
                         r"((?:\[[^\]]+\]\s*(?:,|;|and)?\s*)+)\)|\b(?:the\s+)?(?:abstracts?|sources?|papers?)\s+(?=\[\d)",
                         re.IGNORECASE)
# Words of a sentence that only points at its sources ("Both are reported in the abstracts [1] and [3].").
_POINTER_WORDS = content_words("report reported reports state stated states mention mentioned mentions described "
                               "describes given shown found sources source respectively respective see provided "
                               "provides discussed according detailed information")


def _norm_number(token: str) -> str:
    return token.replace(",", "").rstrip(".").lstrip("0") or "0"


def numbers_in(text: str) -> set[str]:
    """Numbers written in `text`, normalised (thousands separators and leading zeros removed)."""
    return {_norm_number(t) for t in NUMBER.findall(text)}


def strip_keys(text: str) -> str:
    """Text without citation markers."""
    text = re.sub(r"\s{2,}", " ", KEY_GROUP.sub("", text))
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


def tidy(text: str) -> str:
    """Text fit to show: markup residue undone and passage labels ("Title:") removed."""
    return clean_text(LABEL.sub("", text))


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
    missing |= {w for w in proper_nouns(claim) if not re.search(rf"\b{re.escape(w)}", ev_lower)}
    return missing


_NOT_NAMES = frozenset(["the", "this", "that", "these", "those", "their", "its", "our", "we", "it", "they", "in", "on", "for", "and", "of", "with", "by", "from", "as", "at", "however", "while", "both", "each", "when", "where", "which", "what", "whereas", "although", "compared", "according"])


def proper_nouns(text: str) -> set[str]:
    """Capitalised words inside a sentence (languages, corpora, places: "Chinese", "Crawl"), lower-cased.
    Like numbers they count even when the question used them, so a false premise is not echoed."""
    found = set()
    for sentence in split_sentences(text):
        words = re.findall(r"[A-Za-z][\w'-]*", strip_keys(sentence))
        for word in words[1:]:
            if re.fullmatch(r"[A-Z][a-z]{3,}", word) and word.lower() not in _NOT_NAMES:
                found.add(word.lower())
    return found


def semantic_support(cosine: float, weights: SupportSettings) -> float:
    """A sentence cosine scaled to [0, 1]: 0 at the floor (unrelated text), 1 a span above it."""
    return min(max((cosine - weights.cosine_floor) / weights.cosine_span, 0.0), 1.0)


def combine(best_cosine: float, lexical: float, missing: set[str], weights: SupportSettings | None = None) -> float:
    """Support in [0, 1] from the best sentence cosine and lexical overlap; zero if a fact is missing."""
    if missing:
        return 0.0
    weights = weights or SupportSettings()
    return round(weights.embed_weight * semantic_support(best_cosine, weights)
                 + (1 - weights.embed_weight) * lexical, 4)


class SupportChecker:
    """Scores claims against abstracts, using the sentence vectors the retrieval stage caches."""

    def __init__(self, sentences: SentenceIndex, weights: SupportSettings | None = None) -> None:
        self.sentences = sentences
        self.weights = weights or SupportSettings()

    def score(self, claim: str, claim_vector: np.ndarray, paper: Paper, question: str = "") -> tuple[float, str]:
        """(support, best quote) of `claim` by `paper`'s abstract."""
        ev = self.sentences.evidence(paper)
        cosines = ev.vectors @ claim_vector
        best = int(np.argmax(cosines[1:]) + 1) if len(cosines) > 1 else 0
        support = combine(float(cosines.max()), lexical_support(claim, ev.full_text),
                          missing_facts(claim, ev.full_text, question), self.weights)
        return support, ev.clean_sentences[best]

    def score_set(self, claim: str, claim_vector: np.ndarray, papers: list[Paper], question: str = "") -> float:
        """Support of `claim` by `papers` taken together (0.0 for none): the best single paper's support
        of the whole claim or, for a claim that joins clauses ("A covers 40 languages and B 12"), the
        support of its weakest clause by its best paper. Every clause must be stated by some paper, so
        facts of two papers are never joined into a relation neither states ("A has B's 7B parameters")."""
        if not papers:
            return 0.0
        whole = max(self.score(claim, claim_vector, p, question)[0] for p in papers)
        parts = clauses(claim)
        if len(papers) < 2 or len(parts) < 2:
            return whole
        vectors = self.claim_vectors(parts)
        weakest = min(max(self.score(part, v, p, question)[0] for p in papers) for part, v in zip(parts, vectors))
        return max(whole, weakest)

    def claim_vectors(self, claims: list[str]) -> np.ndarray:
        """Vectors of the claims (citation markers removed)."""
        return self.sentences.embedder.embed(claims)


_CLAUSE = re.compile(
    r"\s*;\s*|,?\s+(?:and|while|whereas|but)\s+(?=(?:the|its|their)\s|[A-Z0-9'\"\u2018\u201c])"
    r"|,\s+(?=(?:the|its|their)\s|[A-Z'\"\u2018\u201c])"
)


def clauses(claim: str) -> list[str]:
    """The clauses of a claim that states several facts ("A covers 40 languages, and B 12"): split
    where a new subject starts; a piece with fewer than two content words stays with the one before."""
    parts: list[str] = []
    for piece in _CLAUSE.split(claim):
        if parts and len(content_words(piece)) < 2:
            parts[-1] = f"{parts[-1]} {piece}"
        elif piece.strip():
            parts.append(piece.strip())
    return parts


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


def plain_marks(text: str) -> str:
    """Wordy citation forms as plain markers: "(Abstract [1])" and "the abstract [1]" become "[1]"."""
    return _WORDY_MARK.sub(lambda m: m.group(1).strip() if m.group(1) else "", text)


def only_points(sentence: str) -> bool:
    """True for a sentence that only says where its facts are ("Both are reported in [1] and [3].")."""
    return bool(_keys(sentence)) and not content_words(strip_keys(sentence)) - _POINTER_WORDS


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of the draft, each with the integer keys it cites (in order, no repeats).

    A run of markers that opens a sentence belongs to the sentence before it, unless it is the
    sentence's subject ("[2] reports ..."); so do the keys of a sentence that only points at its
    sources ("Both are reported in [1] and [3].").
    """
    sentences = split_sentences(plain_marks(text).replace("\n", " "))
    claims: list[tuple[str, list[int]]] = []
    for sentence in sentences:
        lead = re.match(r"^((?:\s*\[[^\]]*\]\s*[,;]?)+)\s*", sentence)
        rest = sentence[lead.end() :] if lead else ""
        if lead and claims and not rest[:1].islower():  # "[2] reports ..." keeps its subject
            prev_text, prev_keys = claims[-1]
            claims[-1] = (prev_text, prev_keys + [k for k in _keys(lead.group(1)) if k not in prev_keys])
            sentence = sentence[lead.end() :]
        elif lead and not rest[:1].islower():  # "[1] 863 [2]": markers that are no subject go last
            sentence = f"{rest} {lead.group(1).strip()}"
        if claims and only_points(sentence):
            prev_text, prev_keys = claims[-1]
            claims[-1] = (prev_text, prev_keys + [k for k in _keys(sentence) if k not in prev_keys])
        elif strip_keys(sentence):
            claims.append((sentence, _keys(sentence)))
    return claims


def _keys(text: str) -> list[int]:
    keys: list[int] = []
    for group in KEY_GROUP.findall(text):
        for part in re.findall(r"\d+", group):
            if int(part) not in keys:
                keys.append(int(part))
    return keys


_TRAILING_KEYS = re.compile(r"(\s*(?:[,;]|and)?\s*\[[^\]]*\])+(?=\s*[.!?]?\s*$)")


def finished(text: str) -> str:
    """The draft without a last sentence the token budget cut off (it ends without . ! or ?)."""
    body = text.rstrip()
    tail = _TRAILING_KEYS.sub("", body).rstrip()
    if not tail or tail[-1] in ".!?)\"'\u201d":
        return body
    sentences = split_sentences(body.replace("\n", " "))
    return " ".join(sentences[:-1])


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


def _join_subjects(keys: list[str]) -> str:
    marks = [f"[{k}]" for k in keys]
    return marks[0] if len(marks) == 1 else ", ".join(marks[:-1]) + " and " + marks[-1]


def _is_title_echo(text: str, titles: list[str]) -> bool:
    """True when the sentence says nothing beyond a paper's title ("[1] <title> [1]")."""
    words = content_words(text)
    return bool(words) and any(words <= content_words(t) for t in titles)


Verify = Callable[[str, list[Paper]], bool]


@dataclass
class _Verdict:
    """One draft sentence after checking: the papers kept for it, and how it is shown."""

    text: str
    cited: list[str]
    kept: list[str]
    support: float
    quotes: dict[str, tuple[float, str]]
    shown_text: str = ""


class _Grounder:
    """Checks the sentences of one draft; keeps the shared state (papers, labels) in one place."""

    def __init__(
        self, draft: Draft, papers: Mapping[str, Paper], checker: SupportChecker, min_support: float,
        verify: Verify | None, question: str,
    ) -> None:
        self.passages = draft.passages
        self.papers = papers
        self.checker = checker
        self.min_support = min_support
        self.verify = verify
        self.question = question
        self.wants_number = asks_for_number(question)
        self.packed = [papers[p.paper_id] for p in draft.passages if p.paper_id in papers]
        # A name the question uses is the user's wording, unless exactly one packed abstract uses it: then
        # it names that paper's work ("ADED"), and another abstract cannot support a claim about it.
        owned = list(name_owners(question, self.packed))
        self.wording = re.sub("|".join(rf"\b{re.escape(t)}\b" for t in owned), " ", question,
                              flags=re.IGNORECASE) if owned else question

    def _echoes_question(self, text: str) -> bool:
        """True when a claim only restates a wh-question ("The authors of X are [1].")."""
        if not WH_QUESTION.search(self.question) or numbers_in(text):
            return False
        return not content_words(text) - content_words(self.question)

    def _ok(self, text: str, pids: list[str], support: float) -> bool:
        return support >= self.min_support and (
            self.verify is None or self.verify(text, [self.papers[p] for p in pids]))

    def _alone(self, text: str, vector: np.ndarray, pid: str) -> tuple[float, str]:
        return self.checker.score(text, vector, self.papers[pid], self.wording)

    def _together(self, text: str, vector: np.ndarray, pids: list[str]) -> float:
        return self.checker.score_set(text, vector, [self.papers[p] for p in pids], self.wording)

    def check(self, sentence: str, keys: list[int], vector: np.ndarray, text: str) -> _Verdict:
        """The verdict on one sentence of the draft."""
        cited = list(dict.fromkeys(
            self.passages[k - 1].paper_id for k in keys if 1 <= k <= len(self.passages)
            and self.passages[k - 1].paper_id in self.papers))  # invented keys vanish here
        quotes = {pid: self._alone(text, vector, pid) for pid in cited}
        verdict = _Verdict(text=text, cited=cited, kept=[], support=0.0, quotes=quotes)
        titles = [self.papers[p].title for p in cited] + [p.title for p in self.packed]
        if says_not_stated(text) or _is_title_echo(text, titles) or (
                self.wants_number and not numbers_in(text)) or self._echoes_question(text):
            verdict.support = max((s for s, _ in quotes.values()), default=0.0)
            return verdict
        subject = SUBJECT.match(sentence)
        if subject and cited:  # "[1] and [2] study X": a claim about each subject, checked with its own title
            rest = _readable(sentence[subject.end():], [], self.passages)
            own = [f"{self.papers[p].title} {rest}" for p in cited]
            for pid, own_text, own_vector in zip(cited, own, self.checker.claim_vectors(own)):
                verdict.quotes[pid] = self._alone(own_text, own_vector, pid)
            verdict.kept = [p for p, t in zip(cited, own) if self._ok(t, [p], verdict.quotes[p][0])]
            verdict.support = max((verdict.quotes[p][0] for p in verdict.kept), default=0.0)
            return verdict
        together = self._together(text, vector, cited) if len(cited) > 1 else (quotes[cited[0]][0] if cited else 0.0)
        if cited and self._ok(text, cited, together):
            verdict.kept = [
                p for p in cited if len(cited) == 1 or quotes[p][0] >= self.min_support
                or self._together(text, vector, [q for q in cited if q != p]) < self.min_support
            ]
            verdict.support = together
            return verdict
        # Its citations do not support it: one more packed abstract may complete it ("A has 900 and B
        # 300 [1]"), or one packed abstract alone may support it (the citation moves there).
        others = {p.id: self._alone(text, vector, p.id) for p in self.packed if p.id not in quotes}
        for pid, alone in sorted(others.items(), key=lambda kv: kv[1][0], reverse=True):
            if cited and self._ok(text, [*cited, pid], self._together(text, vector, [*cited, pid])):
                verdict.quotes[pid] = alone
                full = [*cited, pid]
                verdict.kept = [p for p in full if verdict.quotes[p][0] >= self.min_support
                                or self._together(text, vector, [q for q in full if q != p]) < self.min_support]
                verdict.support = self._together(text, vector, full)
                return verdict
            if self._ok(text, [pid], alone[0]):
                verdict.quotes[pid] = alone
                verdict.kept, verdict.support = [pid], alone[0]
                return verdict
        if not cited:  # an uncited sentence may join the facts of two packed abstracts ("A has 3T tokens, B 29T")
            scored = [(self._together(text, vector, list(pair)), list(pair))
                      for pair in combinations(list(others)[:4], 2)]
            best, pair = max(scored, default=(0.0, []))
            if pair and self._ok(text, pair, best):
                verdict.quotes.update({p: others[p] for p in pair})
                verdict.kept, verdict.support = pair, best
                return verdict
        verdict.support = max(together, max((s for s, _ in quotes.values()), default=0.0))
        return verdict


def ground(
    draft: Draft,
    papers: Mapping[str, Paper],
    checker: SupportChecker,
    min_support: float,
    drop_unsupported: bool,
    verify: Verify | None = None,
    question: str = "",
) -> Answer:
    """Resolve keys, check every claim, and build the Answer (abstaining if nothing is supported).

    `verify`, when given (the LLM judge), must also accept each (claim, cited papers) the checker accepts.
    """
    passages = draft.passages
    base = Answer(question="", answer=REFUSAL, abstained=True, passages=passages, model=draft.model,
                  usage=draft.usage, draft=draft.text)
    text = finished(draft.text) if draft.truncated else draft.text
    if is_refusal(text):
        if is_refusal(draft.text):
            return base
        # the budget cut off the only sentence: a false figure it repeated can still be corrected
        return _correct_premise(base, draft.text, papers, checker, question) or base
    parsed = [(s, k) for s, k in split_claims(text) if not re.fullmatch(r"(?i)\W*(yes|no)\W*", strip_keys(s))]
    if not parsed:
        return _correct_premise(base, text, papers, checker, question) or base
    texts = [_with_question(_readable(s, keys, passages), question) for s, keys in parsed]
    vectors = checker.claim_vectors(texts)
    grounder = _Grounder(draft, papers, checker, min_support, verify, question)
    labels: dict[str, str] = {}  # paper_id -> shown key, in order of first use
    quotes: dict[str, tuple[float, str]] = {}
    claims: list[Claim] = []
    shown: list[str] = []
    checked = [(sentence, keys, grounder.check(sentence, keys, vector, claim_text))
               for (sentence, keys), claim_text, vector in zip(parsed, texts, vectors)]
    if drop_unsupported:
        checked = [part for sentence, keys, verdict in checked
                   for part in _salvage(grounder, sentence, keys, verdict)]
    for sentence, keys, verdict in checked:
        supported = bool(verdict.kept)
        for pid in verdict.kept:
            labels.setdefault(pid, str(len(labels) + 1))
            if pid not in quotes or verdict.quotes[pid][0] > quotes[pid][0]:
                quotes[pid] = verdict.quotes[pid]
        claim_labels = [labels[pid] for pid in verdict.kept]
        show = supported or not drop_unsupported
        claims.append(Claim(text=strip_keys(tidy(sentence)), citations=claim_labels, paper_ids=verdict.cited,
                            supported=supported, support=min(verdict.support, 1.0), shown=show))
        if show:
            shown.append(_shown(sentence, keys, passages, verdict.kept, labels, claim_labels))
    if not any(c.supported for c in claims):
        corrected = _correct_premise(base, text, papers, checker, question)
        return (corrected or base).model_copy(update={"claims": claims})
    lead = "No. " if _says_no(text) else ""
    if lead and not numbers_in(strip_keys(" ".join(shown))):  # "No" with no figure: give the abstract's
        fix = _premise_fix(text, papers, passages, checker, question, rejects=True, kept=list(labels))
        if fix is not None:
            paper, quote = fix
            labels.setdefault(paper.id, str(len(labels) + 1))
            quotes.setdefault(paper.id, (1.0, quote))
            shown.insert(0, f"The abstract reports: \u201c{quote}.\u201d [{labels[paper.id]}]")
    citations = [
        Citation(key=label, paper_id=pid, title=papers[pid].title, quote=tidy(quotes[pid][1]),
                 support=min(quotes[pid][0], 1.0))
        for pid, label in labels.items()
    ]
    return base.model_copy(update={"answer": lead + " ".join(shown), "abstained": False, "citations": citations,
                                   "claims": claims})


def _salvage(
    grounder: _Grounder, sentence: str, keys: list[int], verdict: _Verdict
) -> list[tuple[str, list[int], _Verdict]]:
    """An unsupported sentence that joins clauses ("A cuts perplexity by 12.7%, and B gains 25.7%")
    as its clauses, each checked alone with the sentence's keys, so the supported ones can be shown;
    the sentence itself when it is supported, has one clause, or no clause is supported. A clause
    that opens without a subject of its own ("its ...", "80% on B") counts only after a kept clause."""
    parts = clauses(_readable(sentence, [], grounder.passages)) if not verdict.kept else []
    if len(parts) < 2 or not all(map(_quotes_closed, parts)):  # a comma inside a quoted title is no clause break
        return [(sentence, keys, verdict)]
    question = grounder.question
    texts = [_with_question(p, question) for p in parts]
    vectors = grounder.checker.claim_vectors(texts)
    checked: list[tuple[str, list[int], _Verdict]] = []
    for n, (part, text, vector) in enumerate(zip(parts, texts, vectors)):
        says_new = numbers_in(part) - numbers_in(question) or content_words(part) - content_words(question)
        if not says_new or (n and not _OWN_SUBJECT.match(part) and not checked[-1][2].kept):
            checked.append((part, keys, _Verdict(text=text, cited=verdict.cited, kept=[], support=0.0, quotes={})))
        else:
            checked.append((part, keys, grounder.check(part, keys, vector, text)))
    return checked if any(v.kept for _, _, v in checked) else [(sentence, keys, verdict)]


_OWN_SUBJECT = re.compile(r"(?:the\b|[A-Z])")
_QUOTE_MARK = re.compile(r"[\"\u201c\u201d]|(?<![A-Za-z])['\u2018]|['\u2019](?![A-Za-z])")


def _quotes_closed(text: str) -> bool:
    """True when the text opens no quotation it does not close (apostrophes are not quotes)."""
    return len(_QUOTE_MARK.findall(text)) % 2 == 0


def _correct_premise(
    base: Answer, text: str, papers: Mapping[str, Paper], checker: SupportChecker, question: str
) -> Answer | None:
    """When a draft affirms a figure the question asserts ("... 7 trillion tokens, correct? Just say yes."),
    the answer is "No." and the abstract's own figure (see `_premise_fix`), quoted and cited. None when
    that does not apply (the refusal stands)."""
    fix = _premise_fix(text, papers, base.passages, checker, question)
    if fix is None:
        return None
    paper, quote = fix
    answer = f"No. The abstract reports: \u201c{quote}.\u201d [1]"
    citation = Citation(key="1", paper_id=paper.id, title=paper.title, quote=quote, support=1.0)
    return base.model_copy(update={"answer": answer, "abstained": False, "citations": [citation]})


def name_owners(question: str, packed: list[Paper]) -> dict[str, Paper]:
    """Names the question uses ("ADED", "Gopher") that exactly one packed abstract (or its title) uses,
    with that paper."""
    texts = [f"{p.title} {p.abstract}".lower() for p in packed]
    owners: dict[str, Paper] = {}
    for term in named_terms(question) | proper_nouns(question):
        users = [p for p, t in zip(packed, texts) if re.search(rf"\b{re.escape(term)}\b", t)]
        if len(users) == 1:
            owners[term] = users[0]
    return owners


def _premise_fix(
    text: str, papers: Mapping[str, Paper], passages: list, checker: SupportChecker, question: str,  # type: ignore[type-arg]
    rejects: bool = False, kept: list[str] | None = None,
) -> tuple[Paper, str] | None:
    """(paper, quote) that corrects a false figure in the question, or None.

    Applies when the question asserts figures and the draft affirms or repeats one (or, with `rejects`,
    already said "No"). The paper is the one the question names (a name only one packed abstract uses),
    else the first that supports a kept claim (`kept`), else the first the draft cites; it must not state
    every asserted figure. The quote is its sentence with a figure the user did not give, closest to
    the false one."""
    asserted = numbers_in(question)
    keys = _keys(text)
    if not asserted or not (rejects or _affirms(text) or numbers_in(strip_keys(text)) & asserted):
        return None
    packed = [papers[p.paper_id] for p in passages if p.paper_id in papers]
    cited = [passages[k - 1].paper_id for k in keys if 1 <= k <= len(passages) and passages[k - 1].paper_id in papers]
    named = list(dict.fromkeys(p.id for p in name_owners(question, packed).values()))
    if not named and not cited:
        return None
    order = (named if len(named) == 1 else []) + [p for p in kept or [] if p in papers] + cited + named
    paper = papers[order[0]]
    ev = checker.sentences.evidence(paper)
    stated = numbers_in(ev.full_text)
    if asserted <= stated:  # the abstract states every asserted figure: no premise to correct
        return None
    vector = checker.claim_vectors([f"{question} {strip_keys(text)}"])[0]
    with_figures = [i for i in range(1, len(ev.clean_sentences)) if numbers_in(ev.clean_sentences[i])]
    if not with_figures:
        return None
    around = " ".join(_around_numbers(question, asserted - stated))  # "trained on 7 trillion tokens": what it counts
    best = max(with_figures, key=lambda i: (bool(numbers_in(ev.clean_sentences[i]) - asserted),  # news to the user
                                            lexical_support(around, ev.clean_sentences[i]),
                                            float(ev.vectors[i] @ vector)))
    return paper, tidy(ev.clean_sentences[best]).rstrip(" .")


def _around_numbers(text: str, numbers: set[str], span: int = 3) -> list[str]:
    """The words within `span` of each of `numbers` in the text ("trained on 7 trillion tokens")."""
    words = re.findall(r"[\w.%-]+", text)
    near: list[str] = []
    for i, word in enumerate(words):
        if NUMBER.fullmatch(word.rstrip("%")) and _norm_number(word.rstrip("%")) in numbers:
            near += words[max(i - span, 0) : i] + words[i + 1 : i + 1 + span]
    return near


def _affirms(text: str) -> bool:
    """True when the draft opens by agreeing ("Yes, ...", "Correct.")."""
    return re.match(r"^\s*(yes|correct|right|true|indeed)\b", text, re.IGNORECASE) is not None


def _says_no(text: str) -> bool:
    """True when the draft opens by rejecting the question's premise ("No, ...")."""
    return re.match(r"^\s*no\b[\s,.:;!-]", text, re.IGNORECASE) is not None


def _with_question(claim: str, question: str) -> str:
    """A bare figure ("863") as the claim it makes: the question's words with the figure."""
    if question and numbers_in(claim) and not content_words(re.sub(r"\d", " ", claim)):
        return f"{question.rstrip(' ?')}: {claim}"
    return claim


def _readable(sentence: str, keys: list[int], passages: list) -> str:  # type: ignore[type-arg]
    """The claim as the checker reads it: subject citations become their titles, other markers go,
    a leading "Yes,"/"No," is dropped, and markup residue is undone."""
    subject = SUBJECT.match(sentence)
    if subject:
        titles = [passages[k - 1].title for k in _keys(subject.group(1)) if 1 <= k <= len(passages)]
        sentence = " and ".join(titles) + " " + sentence[subject.end():]
    text = strip_keys(tidy(sentence))
    return re.sub(r"^(yes|no)\b[\s,.:;!-]*", "", text, flags=re.IGNORECASE) or text


def _shown(sentence: str, keys: list[int], passages: list, kept: list[str], labels: dict[str, str],  # type: ignore[type-arg]
           claim_labels: list[str]) -> str:
    """The sentence as shown: keys relabelled in place, dropped subjects removed from the subject
    list, markup residue and a leading "Yes/No" removed (a "No." is added once, for the answer)."""
    sentence = re.sub(r"^\s*(yes|no)\b[\s,.:;!-]*", "", tidy(sentence), flags=re.IGNORECASE)
    subject = SUBJECT.match(sentence)
    if subject and kept:
        subject_pids = [passages[k - 1].paper_id for k in _keys(subject.group(1)) if 1 <= k <= len(passages)]
        still = [labels[p] for p in dict.fromkeys(subject_pids) if p in kept]
        if still:
            rest = relabel(sentence[subject.end():], {}, [])
            return f"{_join_subjects(still)} {rest}"
    in_place = {k: labels[passages[k - 1].paper_id] for k in keys
                if 1 <= k <= len(passages) and passages[k - 1].paper_id in kept}
    body = relabel(sentence, in_place, claim_labels)
    if _TRAILING_KEYS.sub("", body).rstrip()[-1:] not in (".", "!", "?", ")", '"', "\u201d"):
        body += "."  # the model stopped without a full stop; the sentence itself is complete
    return body[:1].upper() + body[1:]
