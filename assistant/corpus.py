"""Corpus files -> Papers, streamed.

Reads the papers-listing seed format (chrome lines, "Subscribe" glued to the first title, then
title line / abstract line pairs) and JSONL files of {"title", "abstract"}. Files are read line
by line, so a multi-gigabyte JSONL costs constant memory: `iter_papers` yields papers and hands
every problem, as file:line, to a callback; `scan_corpus` is the checking pass an ingest makes
before it writes anything. `load_corpus` keeps the whole-list form for small corpora. Nothing
valid is dropped silently. Does not chunk or embed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CorpusError
from .types import Paper

CHROME_LINES = ("Get trending papers in your email inbox",)
SUBSCRIBE_PREFIX = "Subscribe"
MIN_ABSTRACT_CHARS = 80
MAX_KEPT_PROBLEMS = 1000  # a scan counts every bad line but keeps only this many messages

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


Problems = Callable[[str], None]


def _iter_lines(path: Path, problem: Problems) -> Iterator[tuple[int, str]]:
    """(line number, text) of a file, read lazily; numbering matches `str.splitlines` of the whole file."""
    if not path.exists():
        problem(f"{path}: no such file; give the path of a .txt listing or a .jsonl corpus")
        return
    if path.is_dir():
        problem(f"{path}: is a folder; give the corpus files inside it")
        return
    n = 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem(f"{path}:{n + 1}: not UTF-8 (byte {exc.start} of the line); re-save the file as UTF-8")
                return
            for line in text.splitlines() or [""]:
                n += 1
                yield n, line


def iter_listing(path: Path, problem: Problems) -> Iterator[Paper]:
    """Papers of a papers-listing text file: optional chrome lines, then title / abstract line pairs.

    A broken pairing is reported once and ends the file: past it, titles and abstracts would be swapped."""
    numbered = ((n, line.strip()) for n, line in _iter_lines(path, problem) if line.strip())
    first = True
    for t_line, title in numbered:
        if first:
            if title.startswith(CHROME_LINES):
                continue
            first = False
            if title.startswith(SUBSCRIBE_PREFIX) and len(title) > len(SUBSCRIBE_PREFIX):
                title = title[len(SUBSCRIBE_PREFIX) :]
        pair = next(numbered, None)
        if pair is None:
            problem(f"{path}:{t_line}: title with no abstract line after it; add the abstract or remove it")
            return
        a_line, abstract = pair
        if len(abstract) < MIN_ABSTRACT_CHARS or len(title) > len(abstract):
            problem(
                f"{path}:{a_line}: expected an abstract after the title on line {t_line}, got a short line; "
                "each paper must be a title line followed by one abstract line"
            )
            return
        yield make_paper(title, abstract, f"{path}:{t_line}")


def iter_jsonl(path: Path, problem: Problems) -> Iterator[Paper]:
    """Papers of a JSONL corpus (one {"title": ..., "abstract": ...} object per line); each bad line is reported."""
    for n, line in _iter_lines(path, problem):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problem(f"{path}:{n}: not valid JSON ({exc.msg}); each line must be one JSON object")
            continue
        if not isinstance(row, dict):
            problem(f"{path}:{n}: expected a JSON object with 'title' and 'abstract'")
            continue
        title, abstract = row.get("title"), row.get("abstract")
        missing = [k for k, v in (("title", title), ("abstract", abstract)) if not isinstance(v, str) or not v.strip()]
        if missing:
            problem(f"{path}:{n}: missing or empty {', '.join(missing)}; both must be non-empty strings")
            continue
        assert isinstance(title, str) and isinstance(abstract, str)
        yield make_paper(title, abstract, f"{path}:{n}")


def iter_papers(paths: list[Path], problem: Problems) -> Iterator[Paper]:
    """Papers of every file in order (a title seen twice appears twice: the later one wins when stored)."""
    if not paths:
        problem("no corpus files given; pass .txt listings or .jsonl files")
    for path in paths:
        bad = 0

        def note(message: str) -> None:
            nonlocal bad
            bad += 1
            problem(message)

        count = 0
        for paper in iter_jsonl(path, note) if path.suffix == ".jsonl" else iter_listing(path, note):
            count += 1
            yield paper
        if count == 0 and not bad:
            problem(f"{path}: holds no papers; check it is a corpus file")


@dataclass
class CorpusScan:
    """What a checking pass over corpus files found: papers, bad lines and their messages (the first
    MAX_KEPT_PROBLEMS), so an ingest can refuse before writing, or skip and count."""

    paths: list[Path]
    papers: int = 0
    bad: int = 0
    problems: list[str] = field(default_factory=list)

    def add_problem(self, message: str) -> None:
        """Count a problem and keep its message while there is room."""
        self.bad += 1
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(message)

    def iter_papers(self) -> Iterator[Paper]:
        """The papers again, without the problems (already counted by the scan)."""
        return iter_papers(self.paths, lambda _message: None)


def scan_corpus(paths: list[Path], skip_bad: bool = False) -> CorpusScan:
    """Read every file once, in constant memory; raise CorpusError with every problem unless `skip_bad`."""
    scan = CorpusScan(list(paths))
    for _ in iter_papers(scan.paths, scan.add_problem):
        scan.papers += 1
    if scan.bad and not skip_bad:
        raise CorpusError(scan.problems + ([f"{scan.bad - len(scan.problems)} more not listed"]
                                           if scan.bad > len(scan.problems) else []))
    return scan


def _collect(parse: Callable[[Path, Problems], Iterator[Paper]], path: Path) -> list[Paper]:
    problems: list[str] = []
    papers = list(parse(path, problems.append))
    if problems:
        raise CorpusError(problems)
    return papers


def parse_listing(path: Path) -> list[Paper]:
    """Every paper of a papers-listing file; raises CorpusError naming the problem's file:line."""
    return _collect(iter_listing, path)


def parse_jsonl(path: Path) -> list[Paper]:
    """Every paper of a JSONL corpus; raises CorpusError naming every bad line."""
    return _collect(iter_jsonl, path)


def load_corpus(paths: list[Path]) -> list[Paper]:
    """Parse every file, then merge; a title seen twice keeps its last version. Raises with all problems."""
    problems: list[str] = []
    by_id: dict[str, Paper] = {}
    for paper in iter_papers(paths, problems.append):
        by_id[paper.id] = paper
    if problems:
        raise CorpusError(problems)
    return list(by_id.values())
