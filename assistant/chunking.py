"""Paper -> Chunks, on sentence boundaries, with token budgets counted by tiktoken.

Most abstracts fit one chunk; longer ones are split between sentences, the next chunk
repeating the last `overlap_sentences` sentences. A single sentence over the budget is cut
on token boundaries.
"""

from __future__ import annotations

import hashlib

from .config import ChunkSettings
from .text import count_tokens, encoding_for, split_sentences
from .types import Chunk, Paper


def _cut_long_sentence(sentence: str, budget: int, encoding: str) -> list[str]:
    enc = encoding_for(encoding)
    tokens = enc.encode(sentence, disallowed_special=())
    return [enc.decode(tokens[i : i + budget]) for i in range(0, len(tokens), budget)]


def chunk_paper(paper: Paper, settings: ChunkSettings) -> list[Chunk]:
    """Cut one paper's cleaned abstract into chunks within the token budget."""
    sentences: list[str] = []
    for sentence in split_sentences(paper.abstract):
        if count_tokens(sentence, settings.encoding) > settings.max_tokens:
            sentences.extend(_cut_long_sentence(sentence, settings.max_tokens, settings.encoding))
        else:
            sentences.append(sentence)
    groups: list[list[str]] = []
    current: list[str] = []
    for sentence in sentences:
        candidate = current + [sentence]
        if current and count_tokens(" ".join(candidate), settings.encoding) > settings.max_tokens:
            groups.append(current)
            keep = current[-settings.overlap_sentences :] if settings.overlap_sentences else []
            current = keep + [sentence]
            if count_tokens(" ".join(current), settings.encoding) > settings.max_tokens:
                current = [sentence]
        else:
            current = candidate
    if current:
        groups.append(current)
    chunks = []
    for index, group in enumerate(groups):
        text = " ".join(group)
        digest = hashlib.sha1(f"{paper.id}\n{index}\n{text}".encode()).hexdigest()[:16]
        chunks.append(
            Chunk(
                id=f"{paper.id}-{index}-{digest[:8]}",
                paper_id=paper.id,
                title=paper.title,
                text=text,
                index=index,
                content_hash=digest,
            )
        )
    return chunks


def chunk_corpus(papers: list[Paper], settings: ChunkSettings) -> list[Chunk]:
    """Chunks of every paper, in corpus order."""
    return [chunk for paper in papers for chunk in chunk_paper(paper, settings)]


def chunking_fingerprint(settings: ChunkSettings) -> str:
    """What about chunking changes the stored vectors."""
    return f"chunk{settings.max_tokens}o{settings.overlap_sentences}{settings.encoding}"
