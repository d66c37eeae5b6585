"""LLM-judge grounding (ragas-style): claims -> one verdict per (claim, cited abstract) -> pure scoring.

The model step (`judge_claims`) is apart from the arithmetic (`verdict_from_text`, `score_verdicts`),
so the arithmetic is tested with tables and the judge runs on any configured backend: the local
model or an OpenAI-compatible server. Slower than the embedding checker; used by the evals and
selectable at answer time (`grounding_mode = "judge"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .answering import load_prompt
from .backends import ChatModel
from .types import Paper


@dataclass(frozen=True)
class Verdict:
    """The judge's word on one claim against one abstract."""

    claim: str
    paper_id: str
    supported: bool | None  # None: the judge's reply was neither YES nor NO


def verdict_from_text(reply: str) -> bool | None:
    """YES -> True, NO -> False, anything else -> None (first such word wins)."""
    match = re.search(r"\b(yes|no)\b", reply, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"


def score_verdicts(verdicts: list[Verdict]) -> float | None:
    """Share of decided verdicts that say supported; None when none was decided."""
    decided = [v.supported for v in verdicts if v.supported is not None]
    return sum(decided) / len(decided) if decided else None


class Judge:
    """Asks a chat model, claim by claim, whether the cited abstract supports it."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.template = load_prompt("judge_claim", {"title", "abstract", "claim"})

    def judge(self, claim: str, papers: list[Paper]) -> Verdict:
        """One verdict on a claim by the abstracts it cites, taken together; the reply is read for YES or NO."""
        if not papers:
            return Verdict(claim=claim, paper_id="", supported=False)
        prompt = self.template.format(title="; ".join(p.title for p in papers),
                                      abstract="\n\n".join(p.abstract for p in papers), claim=claim)
        reply = "".join(p.text for p in self.model.stream([{"role": "user", "content": prompt}], max_tokens=3))
        return Verdict(claim=claim, paper_id=",".join(p.id for p in papers), supported=verdict_from_text(reply))

    def judge_claims(self, pairs: list[tuple[str, list[Paper]]]) -> list[Verdict]:
        """Verdicts for (claim, cited abstracts) pairs, in order."""
        return [self.judge(claim, papers) for claim, papers in pairs]
