"""The eval question set: loading, kinds, the frozen dev/test split, and seeded stratified samples.

Each line of `data/questions.jsonl` carries its `split`: `dev` questions are the ones constants
may be tuned on; `test` questions are read only to report. Does not run any system.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.corpus import paper_id

DATA = Path(__file__).parent / "data"
KINDS = ("single", "quantity", "multi", "list", "unanswerable", "false_premise", "injection", "multilingual", "long")
SPLITS = ("dev", "test")


@dataclass
class Question:
    """One eval question with its gold papers and expected behaviour."""

    id: str
    kind: str
    split: str
    question: str
    gold: set[str]
    must_contain: list[str]
    expect: str
    forbidden: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def expects_abstention(self) -> bool:
        """True when the right behaviour is the refusal."""
        return self.expect == "abstain"


def load_questions(path: Path = DATA / "questions.jsonl") -> list[Question]:
    """The whole question set; gold titles become paper ids. Raises ValueError on a malformed line."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("kind") not in KINDS or row.get("split") not in SPLITS:
            raise ValueError(f"{path}:{n}: kind must be one of {KINDS} and split one of {SPLITS}")
        out.append(Question(
            id=row["id"], kind=row["kind"], split=row["split"], question=row["question"],
            gold={paper_id(t) for t in row.get("gold_titles", [])}, must_contain=row.get("must_contain", []),
            expect=row["expect"], forbidden=row.get("forbidden", []), raw=row,
        ))
    return out


def select(
    questions: list[Question], split: str | None = "dev", kinds: tuple[str, ...] | None = None,
    limit: int | None = None, ids: tuple[str, ...] | None = None,
) -> list[Question]:
    """Filter by split (None: both), kinds and ids, then keep the first `limit` of each kind."""
    chosen = [q for q in questions if (split is None or q.split == split) and (kinds is None or q.kind in kinds)
              and (ids is None or q.id in ids)]
    if limit is None:
        return chosen
    seen: dict[str, int] = {}
    kept = []
    for q in chosen:
        seen[q.kind] = seen.get(q.kind, 0) + 1
        if seen[q.kind] <= limit:
            kept.append(q)
    return kept


def stratified_sample(questions: list[Question], size: int, seed: int) -> list[Question]:
    """About `size` questions, every kind present, each kind in proportion to its share (at least 2
    where it has 2), drawn with a fixed seed so the same data gives the same sample."""
    rng = random.Random(seed)
    by_kind: dict[str, list[Question]] = {}
    for q in questions:
        by_kind.setdefault(q.kind, []).append(q)
    total = len(questions)
    sample: list[Question] = []
    for kind in sorted(by_kind):
        pool = sorted(by_kind[kind], key=lambda q: q.id)
        want = max(min(2, len(pool)), round(size * len(pool) / total))
        sample.extend(rng.sample(pool, min(want, len(pool))))
    return sorted(sample, key=lambda q: (KINDS.index(q.kind), q.id))
