"""The answering systems the eval compares, each turned into one `Outcome` shape.

- `ours`: the assistant as shipped (hybrid retrieval, grounding, list answers).
- `bm25`, `dense`: the same assistant with one retriever only (`retrieval.mode`).
- `citation_engine`: LlamaIndex's stock `CitationQueryEngine` over the same index and model.
- `before`: the assistant of another checkout (e.g. the previous commit), in a child process, so
  a change is measured against the code before it in one run, question by question.

The three assistant systems share one chat model behind `ReplayChat`: at temperature 0 the same
prompt gives the same draft, so a prompt already answered in this run is replayed instead of
generated again, and that row's latency is left out of the latency figures. Scoring is elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.api import Assistant
from assistant.backends import ChatModel, ChatPiece, Messages
from assistant.grounding import split_claims, strip_keys
from assistant.types import Answer

ASSISTANT_SYSTEMS = ("ours", "bm25", "dense")
BASELINES = ("bm25", "dense", "citation_engine")


@dataclass
class Outcome:
    """What one system did with one question, in the terms every metric reads."""

    answer: str
    cited: list[str] = field(default_factory=list, metadata={"doc": "paper ids the final answer cites, in order"})
    draft: str = ""
    draft_claims: list[tuple[str, list[str]]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    replayed: bool = False
    kind: str = "prose"


class ReplayChat:
    """A chat model that replays a draft it already generated for the identical prompt in this run."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name
        self._seen: dict[str, list[ChatPiece]] = {}
        self.replayed = False

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]:
        """Generate (and remember), or replay what this prompt produced before."""
        key = json.dumps([messages, max_tokens], sort_keys=True)
        if key in self._seen:
            self.replayed = True
            yield from self._seen[key]
            return
        pieces: list[ChatPiece] = []
        for piece in self.model.stream(messages, max_tokens):
            pieces.append(piece)
            yield piece
        self._seen[key] = pieces


def outcome_of_answer(answer: Any) -> Outcome:
    """An Answer as an Outcome. Tolerates answers of earlier versions (no draft, no list items), so a
    run of older code is scored by the same rules: their draft is then the text of every claim."""
    by_key = {c.key: c.paper_id for c in answer.citations}
    cited = [c.paper_id for c in answer.citations]
    items = getattr(answer, "items", []) or []
    cited += [i.paper_id for i in items if i.paper_id not in cited]
    claims = [(c.text, list(getattr(c, "paper_ids", None) or [by_key[k] for k in c.citations if k in by_key]))
              for c in answer.claims]
    draft = getattr(answer, "draft", "") or " ".join(text for text, _ in claims)
    citations = [c.model_dump() for c in answer.citations] + [i.model_dump() for i in items]
    return Outcome(answer=answer.answer, cited=cited, draft=draft, draft_claims=claims, citations=citations,
                   timings_ms=dict(answer.timings_ms), usage=dict(answer.usage),
                   kind=getattr(answer, "kind", "prose"))


class AssistantSystem:
    """Our pipeline, optionally with one retriever only."""

    def __init__(self, name: str, assistant: Assistant, chat: ReplayChat) -> None:
        self.name = name
        self.chat = chat
        settings = assistant.settings
        if name != "ours":
            settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"mode": name})})
        self.assistant = Assistant(settings, chat_model=chat, embedder=assistant.embedder)

    def ask(self, question: str) -> Outcome:
        """The system's outcome for one question."""
        self.chat.replayed = False
        outcome = outcome_of_answer(self.assistant.ask(question))
        outcome.replayed = self.chat.replayed
        return outcome


class CitationEngineSystem:
    """LlamaIndex's stock CitationQueryEngine; its [N] markers resolved to the N-th source's paper."""

    name = "citation_engine"

    def __init__(self, assistant: Assistant) -> None:
        from .baselines import CitationEngineBaseline

        self.engine = CitationEngineBaseline(assistant)

    def ask(self, question: str) -> Outcome:
        """The engine's outcome; its answer is its draft (it drops nothing)."""
        out = self.engine.ask(question)
        sources = out["source_paper_ids"]
        claims = [(strip_keys(s), [sources[k - 1] for k in keys if 1 <= k <= len(sources) and sources[k - 1]])
                  for s, keys in split_claims(out["answer"])]
        return Outcome(answer=out["answer"], cited=out["cited_paper_ids"], draft=out["answer"], draft_claims=claims,
                       timings_ms=out["timings_ms"])


# Runs in the child with the other checkout first on sys.path: only APIs every version has.
_WORKER = """
import json, sys
from assistant import Assistant
from assistant.errors import AssistantError
assistant = Assistant.from_settings()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        print(assistant.ask(json.loads(line)["question"]).model_dump_json(), flush=True)
    except AssistantError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
"""


class CheckoutSystem:
    """The assistant of another checkout of this project, asked through a child process."""

    name = "before"

    def __init__(self, checkout: Path) -> None:
        if not (checkout / "assistant" / "api.py").is_file():
            raise ValueError(f"{checkout} is not a checkout of paper-assistant (no assistant/api.py)")
        env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
        self.child = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd=checkout)
        assert self.child.stdout is not None
        ready = self.child.stdout.readline()
        if not ready.startswith('{"ready"'):
            raise RuntimeError(f"the assistant of {checkout} did not start: {ready[:200]!r}")

    def ask(self, question: str) -> Outcome:
        """The other checkout's outcome; an answer object of an older version is read with today's type."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps({"question": question}) + "\n")
        self.child.stdin.flush()
        reply = json.loads(self.child.stdout.readline())
        if "error" in reply:
            return Outcome(answer="", citations=[{"error": reply["error"]}])
        return outcome_of_answer(Answer.model_validate(reply))

    def close(self) -> None:
        """Stop the child."""
        if self.child.stdin is not None:
            self.child.stdin.close()
        self.child.wait(timeout=60)


System = AssistantSystem | CitationEngineSystem | CheckoutSystem


def build_systems(assistant: Assistant, names: tuple[str, ...], before: Path | None = None) -> list[System]:
    """The named systems: the other checkout's first (when given), then ours, then the baselines.
    The assistant's chat model is wrapped for replay."""
    chat = ReplayChat(assistant.chat_model)
    systems: list[System] = [CheckoutSystem(before)] if before is not None else []
    for name in ("ours", *names):
        if name in ASSISTANT_SYSTEMS:
            systems.append(AssistantSystem(name, assistant, chat))
        elif name == "citation_engine":
            systems.append(CitationEngineSystem(assistant))
    return systems
