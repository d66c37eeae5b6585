"""Deterministic fakes for unit tests: a bag-of-words embedder and a queue-driven chat model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import numpy as np

from assistant.backends import ChatPiece, Messages


class HashEmbedder:
    """Each word hashes to a fixed dimension; vectors are L2-normalised word counts. Same text, same vector."""

    name = "hash-bow-test"
    dim = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)


class QueueChat:
    """Answers with the queued replies in order, streamed word by word; records the messages it saw."""

    name = "queue-chat"

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.seen: list[Messages] = []

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[ChatPiece]:
        self.seen.append(messages)
        reply = self.replies.pop(0)
        for word in re.findall(r"\S+\s*", reply):
            yield ChatPiece(text=word)
        yield ChatPiece(usage={"prompt_tokens": 10, "completion_tokens": len(reply.split())})
