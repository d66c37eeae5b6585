"""Follow-up questions -> standalone ones: "and what dataset did they use?" gets the subject it leans on.

`Turn` is one earlier exchange (an Answer object from the HTTP API is a valid Turn);
`rewrite_followup` puts the papers the last answer cited (or the last question) in front of a
question that cannot stand alone. Deterministic on purpose: the rewrite is shown to the user and
repeatable in tests, and costs no generation on a CPU-bound box. Does not retrieve or answer.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

CONTEXT_TITLES = 2  # titles of the previous answer prepended to a follow-up


class CitedPaper(BaseModel):
    """A paper an earlier answer cited; only the title is needed (extra fields are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    title: str
    paper_id: str = ""


class Turn(BaseModel):
    """One earlier exchange of a conversation. An Answer object from this API is a valid Turn."""

    model_config = ConfigDict(extra="ignore", strict=True)

    question: str = Field(description="The question as it was answered (an Answer's `question`).")
    answer: str = Field("", description="The answer text.")
    citations: list[CitedPaper] = Field(default_factory=list, description="Papers the answer cited.")


_WORD = re.compile(r"[a-z0-9']+")
_OPENER = re.compile(r"^\s*(?:and|also|but|so|then|ok(?:ay)?)\b[\s,]*", re.IGNORECASE)  # dropped from the rewrite
_FOLLOWUP_START = re.compile(r"^\s*(?:and|also|but|so|then|ok(?:ay)?|what about|how about)\b", re.IGNORECASE)
_REGARDING = re.compile(r'^Regarding (?:"[^"]*"(?:, "[^"]*")*|the question "[^"]*"): ', re.DOTALL)
_PRONOUNS = frozenset((
    "they", "them", "their", "theirs", "it", "its", "this", "that", "these", "those",
    "he", "she", "his", "her", "there", "such", "same", "former", "latter",
))
_REFERRING = ("the paper", "the papers", "the authors", "the model", "the models", "the method", "the approach",
              "the dataset", "the study", "this work", "the work", "the results", "the benchmark")
_SHORT_WORDS = 3  # a question this short cannot stand alone
_FOLLOWUP_WORDS = 12  # longer questions with a pronoun usually name their subject themselves


def _names_a_subject(question: str) -> bool:
    # A capitalised or numbered term after the first word: "What is FooNet?", "Results on WMT14?"
    return any(t[0].isupper() or any(c.isdigit() for c in t) for t in question.split()[1:] if t[:1].isalnum())


def is_followup(question: str) -> bool:
    """True when the question leans on the conversation ("and what dataset did they use?")."""
    low = question.lower()
    words = _WORD.findall(low)
    if _FOLLOWUP_START.match(question):
        return True
    if len(words) <= _SHORT_WORDS:
        return not _names_a_subject(question)
    if len(words) > _FOLLOWUP_WORDS:
        return False
    return bool(_PRONOUNS.intersection(words)) or any(phrase in low for phrase in _REFERRING)


def rewrite_followup(question: str, history: list[Turn]) -> str:
    """A standalone question: a follow-up gets the papers cited in the last answer (or the last question)
    as subject. Questions that stand alone, or come without history, come back unchanged."""
    if not history:
        return question
    question = question.strip()
    if not question or not is_followup(question):
        return question
    body = _OPENER.sub("", question).strip() or question
    body = body[0].upper() + body[1:]
    titles: list[str] = []
    for turn in reversed(history):  # the latest turn that cited papers names the subject
        titles = list(dict.fromkeys(c.title.strip() for c in turn.citations if c.title.strip()))
        if titles:
            break
    if titles:
        subject = ", ".join(f'"{t}"' for t in titles[:CONTEXT_TITLES])
    else:
        previous = _REGARDING.sub("", history[-1].question).strip()
        subject = f'the question "{previous}"'
    return f"Regarding {subject}: {body}"
