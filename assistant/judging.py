"""LLM-judge grounding: one verdict per (claim, cited abstracts), by the chat model, read as YES or NO.

Selectable at answer time (`grounding_mode = "judge"`): each claim the embedding checker accepts
must also be accepted by the judge. The model step (`Judge.judge`) is apart from reading its reply
(`verdict_from_text`, a pure function tested with a table in tests/test_grounding.py), so the judge
runs on any configured backend: the local model or an OpenAI-compatible server. Slower than the
embedding checker (one call per claim); the evals run the checker. Does not score claims itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .answering import load_prompt
from .backends import ChatModel
from .types import Paper


@dataclass(frozen=True)
class Verdict:
    """The judge's word on one claim against the abstracts it cites."""

    claim: str
    paper_id: str
    supported: bool | None  # None: the judge's reply was neither YES nor NO


def verdict_from_text(reply: str) -> bool | None:
    """YES -> True, NO -> False, anything else -> None (first such word wins)."""
    match = re.search(r"\b(yes|no)\b", reply, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"


class Judge:
    """Asks a chat model, claim by claim, whether the cited abstracts support it."""

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
