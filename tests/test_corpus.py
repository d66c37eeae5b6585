"""Corpus parsing: the seed listing's chrome and anomalies, JSONL, and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.corpus import clean_text, load_corpus, paper_id, parse_jsonl, parse_listing
from assistant.errors import CorpusError
from tests.conftest import SEED_FILE


def test_seed_listing_parses_into_239_papers_without_chrome() -> None:
    papers = parse_listing(SEED_FILE)
    assert len(papers) == 239
    assert papers[0].title == "Understanding Semantics from Speech Through Pre-training"
    assert not any("trending papers" in p.title or p.title.startswith("Subscribe") for p in papers)
    assert len({p.id for p in papers}) == 239
    assert papers[1].source.endswith(":5")


def test_seed_abstracts_keep_raw_text_and_clean_residue() -> None:
    papers = {p.title: p for p in parse_listing(SEED_FILE)}
    flash = next(p for p in papers.values() if "11.9times" in p.raw_abstract)
    assert "11.9\u00d7" in flash.abstract and "11.9times" not in flash.abstract
    dom = next(p for p in papers.values() if "domainsx2013varying" in p.raw_abstract)
    assert "domains\u2013varying" in dom.abstract


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a 1.3times speedup", "a 1.3\u00d7 speedup"),
        ("from nytimes.com and sometimes lifetimes", "from nytimes.com and sometimes lifetimes"),
        ("domainsx2013varying", "domains\u2013varying"),
        ("see url{https://x.org/a}", "see https://x.org/a"),
        ("{Pr}(text | alpha)", "Pr(text | alpha)"),
        ("two  spaces\tand tab", "two spaces and tab"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_ids_are_stable_across_case_and_punctuation() -> None:
    assert paper_id("Hello, World!") == paper_id("hello world")
    assert paper_id("Hello World") != paper_id("Hello Worlds")


def test_listing_with_title_but_no_abstract_names_file_and_line(tmp_path: Path) -> None:
    abstract = "An abstract long enough to count as one, describing a method and its results in detail."
    path = tmp_path / "list.txt"
    path.write_text(f"Title One\n{abstract}\nTitle Two\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        parse_listing(path)
    assert f"{path}:3" in str(err.value)


def test_listing_with_two_titles_in_a_row_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("Title One\nTitle Two\n" + "x" * 100 + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"list.txt:2: expected an abstract"):
        parse_listing(path)


def test_jsonl_reports_every_bad_line_and_keeps_nothing_silently(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        json.dumps({"title": "Good", "abstract": "Fine abstract."}),
        "{not json",
        json.dumps({"title": "No abstract"}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"title": "  ", "abstract": "blank title"}),
    ]
    path.write_text("\n".join(rows), encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        parse_jsonl(path)
    lines = sorted(p.split(":")[1] for p in err.value.problems)
    assert lines == ["2", "3", "4", "6"]


def test_jsonl_good_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"title": "A paper", "abstract": "It does things."}) + "\n", encoding="utf-8")
    (paper,) = parse_jsonl(path)
    assert paper.title == "A paper" and paper.source == f"{path}:1"


def test_missing_and_non_utf8_files_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus([tmp_path / "nope.txt"])
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Titre\nR\u00e9sum\u00e9 ".encode("latin-1") + b"x" * 100)
    with pytest.raises(CorpusError, match="not UTF-8.*re-save"):
        load_corpus([bad])


def test_load_corpus_merges_files_and_collects_all_problems(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text(json.dumps({"title": "Same", "abstract": "v1"}) + "\n", encoding="utf-8")
    newer = tmp_path / "b.jsonl"
    newer.write_text(json.dumps({"title": "same", "abstract": "v2"}) + "\n", encoding="utf-8")
    (paper,) = load_corpus([good, newer])
    assert paper.abstract == "v2"
    with pytest.raises(CorpusError) as err:
        load_corpus([tmp_path / "x.jsonl", tmp_path / "y.txt"])
    assert len(err.value.problems) == 2
