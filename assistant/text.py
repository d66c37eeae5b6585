"""Text helpers shared by the stages: token counting (tiktoken), sentence splitting, content words."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path


def _point_tiktoken_at_bundled_files() -> None:
    """tiktoken downloads its encodings unless pointed at the copies llama-index-core ships."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    try:
        import llama_index.core as lic
    except ImportError:
        return
    cache = Path(lic.__file__).parent / "_static" / "tiktoken_cache"
    if cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


@lru_cache(maxsize=4)
def encoding_for(name: str):  # type: ignore[no-untyped-def]
    _point_tiktoken_at_bundled_files()
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens of `text` in the given tiktoken encoding."""
    return len(encoding_for(encoding).encode(text, disallowed_special=()))


_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "vs.", "etc.", "cf.", "Fig.", "Eq.", "approx.", "resp.")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations such as 'e.g.' and 'et al.' inside them."""
    parts = _BOUNDARY.split(text.strip())
    sentences: list[str] = []
    for part in parts:
        if sentences and sentences[-1].endswith(_ABBREVIATIONS):
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return [s.strip() for s in sentences if s.strip()]



WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "but", "with", "by", "from", "as", "at", "is", "are", "was", "were", "be", "been", "being", "this", "that", "these", "those", "it", "its", "their", "they", "them", "we", "our", "us", "you", "your", "he", "she", "his", "her", "which", "who", "whom", "whose", "what", "when", "where", "why", "how", "than", "then", "so", "such", "can", "could", "may", "might", "will", "would", "shall", "should", "do", "does", "did", "has", "have", "had", "not", "no", "nor", "also", "into", "onto", "over", "under", "about", "between", "both", "each", "more", "most", "other", "some", "any", "all", "only", "very", "via", "per", "using", "used", "use", "based", "show", "shows", "paper", "papers", "abstract", "abstracts", "propose", "proposes", "proposed", "study", "work", "approach", "method", "methods", "new"]
)

def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words that carry meaning."""
    return {_stem(w) for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2 and not w.isdigit()}
