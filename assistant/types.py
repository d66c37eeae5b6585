"""The project's own data types, from corpus to answer. Library types never leave their module."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Paper(BaseModel):
    """One paper: a title and its abstract, as found in a corpus file."""

    id: str = Field(description="Stable id: a hash of the normalised title.")
    title: str
    abstract: str = Field(description="Abstract with light clean-up of encoding residue.")
    raw_abstract: str = Field(description="Abstract exactly as in the source, kept for quoting.")
    source: str = Field(description="file:line the paper came from.")
    content_hash: str = Field(description="Hash of title + abstract; decides re-embedding.")


class Chunk(BaseModel):
    """A piece of an abstract sized for the embedder, with its paper's id and title."""

    id: str
    paper_id: str
    title: str
    text: str
    index: int
    content_hash: str


class Passage(BaseModel):
    """A retrieved piece of evidence, in rank order."""

    paper_id: str
    title: str
    text: str
    score: float = Field(description="Fused retrieval score (reciprocal rank).")
    dense_score: float = Field(0.0, description="Best cosine similarity of the paper's chunks to the question.")


class Sources(BaseModel):
    """The retrieved papers, announced before the answer is written: the stream's `sources` event.

    Sent only when the assistant is going to answer (the retrieval gate passed). The same passages,
    in the same order, come back in the answer's `passages`; the papers the answer cites are among them.
    """

    passages: list[Passage] = Field(description="One per paper, best first (the first is rank 1).")


class Citation(BaseModel):
    """A citation shown to the user: a key from the answer text resolved to a paper."""

    key: str = Field(description="The marker used in the answer text, e.g. '1' for [1].")
    paper_id: str
    title: str
    quote: str = Field(description="The sentence of the abstract that best supports the claims citing it.")
    support: float = Field(ge=0.0, le=1.0)


class Claim(BaseModel):
    """One sentence of the draft answer with the citations it carries."""

    text: str
    citations: list[str] = Field(description="Citation keys (as shown in the answer) this claim carries.")
    paper_ids: list[str] = Field(
        default_factory=list, description="Papers the draft sentence cited (keys the prompt never offered dropped)."
    )
    supported: bool
    support: float = Field(ge=0.0, le=1.0, description="Support of the claim by its cited papers taken together.")
    shown: bool = Field(True, description="Whether the claim is part of the shown answer.")


class Draft(BaseModel):
    """What the model wrote, before grounding: text with prompt keys, and the passages it saw."""

    text: str
    passages: list[Passage] = Field(description="Passages in prompt order; prompt key n is passages[n-1].")
    model: str
    usage: dict[str, int] = Field(default_factory=dict)
    truncated: bool = Field(False, description="Generation stopped at the answer token budget.")


class ListItem(BaseModel):
    """One paper of a list answer ("which papers ..."), with the sentence that shows it fits."""

    key: str
    paper_id: str
    title: str
    quote: str = Field(description="The abstract's sentence that best matches the question.")
    support: float = Field(ge=0.0, le=1.0, description="How well the abstract fits the question.")


class Answer(BaseModel):
    """The answer object returned by the CLI (--json), the Python API and the HTTP API."""

    question: str
    answer: str
    abstained: bool
    kind: Literal["prose", "list"] = Field(
        "prose", description="'list' when the question asks for papers: `items` holds one entry per paper."
    )
    items: list[ListItem] = Field(default_factory=list)
    draft: str = Field("", description="What the model wrote, before grounding, with its prompt keys [n].")
    question_used: str = Field(
        "", description="The question as searched and answered, when it differs from `question` "
        "(shortened to its end, or put into English)."
    )
    question_truncated: bool = Field(
        False, description="The question was longer than max_question_tokens and was answered from its end."
    )
    citations: list[Citation] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
    model: str = ""
    index_fingerprint: str = ""
