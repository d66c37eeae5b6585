"""A question that names a paper the answer leaves out ("Which models do the syntactic probing study
and the LAPE study analyze?" answered for the first study only) -> that paper quoted and cited too.

A small model often answers for the first paper only. After grounding, each paper the question's
asking sentence refers to (by a name, or a rare word, that exactly one packed abstract uses) and the
answer does not cite is added with the abstract sentence that best answers the question, when the
abstract fits the question as well as a listed paper must (`list_min_fit`). A quote is the
abstract's own words, so nothing unchecked is added. Refusals, answers citing nothing and list
answers are left alone. Does not write prose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .grounding import name_owners, tidy
from .listing import ListJudge
from .text import WORD, asks_for_number, content_words, split_sentences
from .types import Answer, Citation, Paper


def asked_sentence(question: str) -> str:
    """The sentence that asks: the last one with a question mark, else the last one."""
    sentences = split_sentences(question) or [question]
    return next((s for s in reversed(sentences) if "?" in s), sentences[-1])


def named_papers(asked: str, packed: list[Paper], rare: Callable[[str], bool]) -> list[Paper]:
    """The packed papers the asking sentence refers to by a word only that abstract uses among the
    packed ones: a name ("UniMax", "Gopher"), or a word that is `rare` in the collection
    ("quadrant"). In the order the sentence uses them, each once."""
    owners = name_owners(asked, packed)
    at: dict[str, int] = {p.id: min(asked.lower().find(t) for t, o in owners.items() if o.id == p.id)
                          for p in owners.values()}
    words = [content_words(f"{p.title} {p.abstract}") for p in packed]
    for match in WORD.finditer(asked.lower()):
        stem = content_words(match.group())
        users = [p for p, have in zip(packed, words) if stem and stem <= have]
        if len(users) == 1 and users[0].id not in at and rare(match.group()):
            at[users[0].id] = match.start()
    chosen = {p.id: p for p in packed if p.id in at}
    return sorted(chosen.values(), key=lambda p: at[p.id])


def cover_named(
    answer: Answer, question: str, papers: Mapping[str, Paper], judge: ListJudge, rare: Callable[[str], bool],
    min_fit: float,
) -> Answer:
    """The answer with a quoted, cited sentence for each paper the question names that it does not cite
    (only for a prose answer that cites some other paper)."""
    if answer.abstained or answer.kind != "prose" or not answer.citations:
        return answer
    packed = [papers[p.paper_id] for p in answer.passages if p.paper_id in papers]
    asked = asked_sentence(question)
    cited = {c.paper_id for c in answer.citations}
    missing = [p for p in named_papers(asked, packed, rare) if p.id not in cited]
    if not missing:
        return answer
    vector = judge.sentences.embedder.embed([asked])[0]
    citations = list(answer.citations)
    added: list[str] = []
    for paper in missing:
        fit, quote = judge.fit(asked, vector, paper, figures=asks_for_number(asked))
        if fit < min_fit:
            continue
        key = str(len(citations) + 1)
        quote = tidy(quote)
        citations.append(Citation(key=key, paper_id=paper.id, title=paper.title, quote=quote, support=min(fit, 1.0)))
        added.append(f"On {paper.title}, the abstract says: \u201c{quote.rstrip()}\u201d [{key}]")
    if not added:
        return answer
    return answer.model_copy(update={"answer": " ".join([answer.answer, *added]), "citations": citations})
