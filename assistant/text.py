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


# A citation marker as shown in an answer and offered in a prompt: "[3]". (The grounding stage reads
# the looser forms a model writes, "[1, 2]" or "[source 1]", with its own parser.)
CITATION_MARK = re.compile(r"\[(\d+)\]")

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


_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|large|big|long|fast|often|high|low|small|far)|by how|to what extent|"
    r"what (percentage|percent|fraction|share|proportion|number|size|amount|factor)|"
    r"(what|which) (is|was|were|are) (the|its|their) (accuracy|perplexity|score|rate|speed-?up|size|error rate|"
    r"gain|improvement|reduction|win rate|number)|"
    r"what ([\w-]+ ){0,2}(accuracy|perplexity|score|speed-?ups?|error rate|win rate|gains?|improvement|reduction|fid|bleu|"
    r"range|percentage|size)|how accurate|at what (\w+ )?(rate|size|scale|threshold))\b",
    re.IGNORECASE,
)


def asks_for_number(question: str) -> bool:
    """True when the question asks for a quantity ("how many", "what accuracy", "by how much")."""
    return _ASKS_NUMBER.search(question) is not None


_ENGLISH = frozenset(["the", "of", "and", "to", "in", "is", "are", "was", "were", "what", "which", "how", "does", "do", "did", "with", "for", "on", "by", "that", "this", "from", "than", "many", "much", "who", "whose", "why", "when", "where"])
_FOREIGN = frozenset(
    ["de", "la", "el", "los", "las", "en", "que", "qué", "cuál", "cuáles", "cuántos", "cuántas", "cómo", "por", "para", "con", "del", "una", "un", "y", "es", "se", "le", "les", "des", "du", "et", "est", "quel", "quelle", "quels", "quelles", "combien", "comment", "dans", "sur", "pour", "avec", "une", "au", "aux", "der", "die", "das", "und", "ist", "wie", "viele", "welche", "welcher", "welches", "mit", "für", "auf", "den", "dem", "ein", "eine", "einem", "um", "wird", "werden", "sich", "di", "il", "che", "per", "con", "gli", "della", "è", "quanti", "quale", "o", "como", "qual", "quantos", "ich", "einen", "nicht", "man", "je", "yo", "mi"]
)


def looks_english(text: str) -> bool:
    """True unless the text is in another script (CJK, Cyrillic, ...) or has more common words of
    Spanish, French, German, Italian or Portuguese than of English."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return True
    if sum(ord(ch) > 0x24F for ch in letters) > 0.2 * len(letters):  # beyond Latin Extended
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    english = sum(w in _ENGLISH for w in words)
    foreign = sum(w in _FOREIGN for w in words)
    return english >= foreign


NAMED = re.compile(r"\b(?=[A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*[A-Z0-9])[A-Za-z][A-Za-z0-9-]*[A-Z0-9][A-Za-z0-9-]*\b")


def named_terms(text: str) -> set[str]:
    """Method-like names: words with an inner capital or digit, such as ResNet-50, XLNet, GPT-4."""
    return {t.lower() for t in NAMED.findall(text)}
