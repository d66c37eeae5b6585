"""Corpus files -> list[Paper].

Reads the papers-listing seed format (chrome lines, "Subscribe" glued to the first title, then
title line / abstract line pairs) and JSONL files of {"title", "abstract"}. Every problem is
reported with file:line; nothing valid is dropped silently. Does not chunk or embed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .errors import CorpusError
from .types import Paper

CHROME_LINES = ("Get trending papers in your email inbox",)
SUBSCRIBE_PREFIX = "Subscribe"
MIN_ABSTRACT_CHARS = 80

_RESIDUE = [
    (re.compile(r"(?<![\w$])\$([^$\s][^$\n]{0,78}?)\$(?![\w$])"), r"\1"),  # inline math: "$k$" -> "k"
    (re.compile(r"\\(?:text|mathrm|mathbf|textbf|textit|emph|mathit)\{([^}]*)\}"), r"\1"),
    (re.compile(r"\\times\b"), "\u00d7"),
    (re.compile(r"\\(?:sim|approx)\b"), "~"),
    (re.compile(r"\\([%&#_$])"), r"\1"),  # "91.5\%" -> "91.5%"
    (re.compile(r"\\[~'\"^`]\{?(\w)\}?"), r"\1"),  # accents: "V\~oro" -> "Voro"
    (re.compile(r"\\([A-Za-z]+)\b"), r"\1"),  # any other LaTeX command: "\alpha" -> "alpha"
    (re.compile(r"x2013"), "\u2013"),  # en dash left as its code point
    (re.compile(r"x2014"), "\u2014"),
    (re.compile(r"(?<=\d)times\b"), "\u00d7"),  # "1.3times" -> "1.3×"
    (re.compile(r"\b(?:url|href)\{([^}]*)\}"), r"\1"),
    (re.compile(r"\{(\w+)\}"), r"\1"),  # "{Pr}" -> "Pr"
    (re.compile(r"\s+"), " "),
]


def clean_text(text: str) -> str:
    """Undo obvious LaTeX and encoding residue; the raw text is kept elsewhere for quoting."""
    for pattern, repl in _RESIDUE:
        text = pattern.sub(repl, text)
    return text.strip()


def normalise_title(title: str) -> str:
    """Lower-case alphanumerics only: the basis of a paper's stable id."""
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def paper_id(title: str) -> str:
    """Stable id of a paper, independent of file and position."""
    return "p" + hashlib.sha1(normalise_title(title).encode()).hexdigest()[:12]


def make_paper(title: str, abstract: str, source: str) -> Paper:
    """Build a Paper from raw title and abstract text."""
    title = " ".join(title.split())
    raw = abstract.strip()
    digest = hashlib.sha1(f"{title}\n{raw}".encode()).hexdigest()[:16]
    return Paper(
        id=paper_id(title),
        title=title,
        abstract=clean_text(raw),
        raw_abstract=raw,
        source=source,
        content_hash=digest,
    )


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise CorpusError([f"{path}: no such file; give the path of a .txt listing or a .jsonl corpus"])
    if path.is_dir():
        raise CorpusError([f"{path}: is a folder; give the corpus files inside it"])
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorpusError([f"{path}: not UTF-8 (byte {exc.start}); re-save the file as UTF-8"]) from None


def parse_listing(path: Path) -> list[Paper]:
    """Parse a papers-listing text file: optional chrome lines, then title / abstract line pairs."""
    lines = _read_lines(path)
    numbered = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    while numbered and numbered[0][1].startswith(CHROME_LINES):
        numbered.pop(0)
    if numbered and numbered[0][1].startswith(SUBSCRIBE_PREFIX) and len(numbered[0][1]) > len(SUBSCRIBE_PREFIX):
        n, first = numbered[0]
        numbered[0] = (n, first[len(SUBSCRIBE_PREFIX) :])
    problems: list[str] = []
    papers: list[Paper] = []
    for i in range(0, len(numbered), 2):
        t_line, title = numbered[i]
        if i + 1 >= len(numbered):
            problems.append(f"{path}:{t_line}: title with no abstract line after it; add the abstract or remove it")
            break
        a_line, abstract = numbered[i + 1]
        if len(abstract) < MIN_ABSTRACT_CHARS or len(title) > len(abstract):
            problems.append(
                f"{path}:{a_line}: expected an abstract after the title on line {t_line}, got a short line; "
                "each paper must be a title line followed by one abstract line"
            )
            break  # the pairing is lost from here on; reporting more would only mislead
        papers.append(make_paper(title, abstract, f"{path}:{t_line}"))
    if problems:
        raise CorpusError(problems)
    return papers


def parse_jsonl(path: Path) -> list[Paper]:
    """Parse a JSONL corpus: one {"title": ..., "abstract": ...} object per line."""
    problems: list[str] = []
    papers: list[Paper] = []
    for n, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{n}: not valid JSON ({exc.msg}); each line must be one JSON object")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{n}: expected a JSON object with 'title' and 'abstract'")
            continue
        title, abstract = row.get("title"), row.get("abstract")
        missing = [k for k, v in (("title", title), ("abstract", abstract)) if not isinstance(v, str) or not v.strip()]
        if missing:
            problems.append(f"{path}:{n}: missing or empty {', '.join(missing)}; both must be non-empty strings")
            continue
        assert isinstance(title, str) and isinstance(abstract, str)
        papers.append(make_paper(title, abstract, f"{path}:{n}"))
    if problems:
        raise CorpusError(problems)
    return papers


def load_corpus(paths: list[Path]) -> list[Paper]:
    """Parse every file, then merge; a title seen twice keeps its last version. Raises with all problems."""
    problems: list[str] = []
    by_id: dict[str, Paper] = {}
    if not paths:
        raise CorpusError(["no corpus files given; pass .txt listings or .jsonl files"])
    for path in paths:
        try:
            parsed = parse_jsonl(path) if path.suffix == ".jsonl" else parse_listing(path)
        except CorpusError as exc:
            problems.extend(exc.problems)
            continue
        if not parsed:
            problems.append(f"{path}: holds no papers; check it is a corpus file")
        for paper in parsed:
            by_id[paper.id] = paper
    if problems:
        raise CorpusError(problems)
    return list(by_id.values())
