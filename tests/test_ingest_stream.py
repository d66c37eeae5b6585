"""Streaming ingest: bounded batches read lazily, bad lines as file:line (refused or skipped and
counted), a crashed ingest resumed without re-embedding, duplicate titles across batches, and
collections chosen by embedder (model and dimension) with the reason said. Fakes embed; the
command-line test runs the real packaged embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant import store as store_module
from assistant.chunking import chunk_corpus
from assistant.config import Settings
from assistant.corpus import load_corpus, make_paper, scan_corpus
from assistant.errors import CorpusError, ModelError
from assistant.store import Store, index_fingerprint
from assistant.types import Paper
from tests.conftest import REPO
from tests.fakes import HashEmbedder

ABSTRACT = "We study {topic}. Our method improves {topic} by {n}% on three benchmarks. Code is released."


def make_papers(count: int, version: int = 0) -> list[Paper]:
    return [make_paper(f"Paper {i} on topic {i % 13}", ABSTRACT.format(topic=f"topic {i}", n=i + version), f"t:{i}")
            for i in range(count)]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


class CountingEmbedder(HashEmbedder):
    """The hash embedder, counting texts; raises after `fail_after` calls (a crash mid-ingest)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.texts = 0
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C does to an ingest
        self.texts += len(texts)
        return super().embed(texts)


class OtherDimEmbedder(HashEmbedder):
    """Same vectors, another name and size: stands for another embedding model."""

    name = "openai:other-model:128d"
    dim = 128

    def embed(self, texts: list[str]) -> np.ndarray:
        return super().embed(texts)[:, :128]


def test_bad_line_refuses_the_run_before_any_write(settings: Settings, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"title": "Good", "abstract": "A fine abstract."}, "{oops",
                                                {"title": "Also good", "abstract": "Another abstract."}])
    store = Store(settings, HashEmbedder())
    with pytest.raises(CorpusError, match=r"c.jsonl:2: not valid JSON"):
        store.ingest_files([corpus])
    assert store.is_empty() and store.papers.count() == 0


def test_skip_bad_skips_and_counts_each_bad_line(settings: Settings, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"title": "Good", "abstract": "A fine abstract."}, "{oops",
                                                {"title": "No abstract"}, ["a", "list"],
                                                {"title": "Also good", "abstract": "Another abstract."}])
    report = Store(settings, HashEmbedder()).ingest_files([corpus], skip_bad=True)
    assert (report.papers, report.papers_read, report.bad_lines) == (2, 2, 3)
    assert [p.split(":")[1] for p in report.problems] == ["2", "3", "4"]
    assert all(p.startswith(f"{corpus}:") for p in report.problems)


def test_scan_keeps_a_bounded_number_of_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("assistant.corpus.MAX_KEPT_PROBLEMS", 3)
    corpus = write_jsonl(tmp_path / "c.jsonl", ["{bad"] * 10 + [{"title": "Good", "abstract": "Fine."}])
    scan = scan_corpus([corpus], skip_bad=True)
    assert (scan.papers, scan.bad, len(scan.problems)) == (1, 10, 3)
    with pytest.raises(CorpusError, match="7 more not listed"):
        scan_corpus([corpus])


def test_ingest_reads_papers_lazily_in_bounded_batches(settings: Settings) -> None:
    consumed = 0

    def papers() -> Iterator[Paper]:
        nonlocal consumed
        for paper in make_papers(3000):
            consumed += 1
            yield paper

    read_at_first_write: list[int] = []
    report = Store(settings, HashEmbedder()).ingest(
        papers(), progress=lambda done, total: read_at_first_write.append(consumed) if done else None, total=3000)
    # The reader runs at most the queues' depth ahead of the writer: the first batch is written
    # long before the 3000 papers are read.
    batch, depth = settings.store.ingest_batch, store_module.QUEUE_DEPTH
    assert read_at_first_write[0] <= batch * (2 * depth + 4)
    assert (report.papers, report.chunks_added, report.papers_read) == (3000, 3000, 3000)


def test_crashed_ingest_resumes_without_reembedding_what_is_stored(settings: Settings) -> None:
    papers = make_papers(1500)
    crashing = CountingEmbedder(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        Store(settings, crashing).ingest(papers)
    store = Store(settings, HashEmbedder())
    stored_chunks, stored_papers = store.chunks.count(), store.papers.count()
    assert 0 < stored_papers < 1500
    resumed = CountingEmbedder()
    report = Store(settings, resumed).ingest(papers)
    # Each paper has one chunk and three sentences; a paper's record is written after its chunks and
    # its sentence vectors, so the resumed run embeds exactly the missing chunks and the title and
    # sentences of the papers without a record.
    assert report.chunks_added == 1500 - stored_chunks
    assert resumed.texts == (1500 - stored_chunks) + 4 * (1500 - stored_papers)
    assert sorted(c.id for c in store.all_chunks()) == sorted(c.id for c in chunk_corpus(papers, settings.chunking))
    assert store.papers.count() == 1500
    assert store.sentences.current(papers) == {p.id for p in papers}


def test_a_title_repeated_in_later_batches_keeps_its_last_version(settings: Settings) -> None:
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"ingest_batch": 2})})
    v1, v2 = make_papers(12), make_papers(12, version=50)
    stream = v1 + [v2[0], v2[5]] + make_papers(4)[1:3] + [v1[0]]  # paper 0: v1, v2, then v1 again
    store = Store(settings, HashEmbedder())
    store.ingest(stream)
    expected = load_corpus_like(stream)
    assert sorted(c.id for c in store.all_chunks()) == sorted(c.id for c in chunk_corpus(expected, settings.chunking))
    stored = {p.id: p.content_hash for p in store.all_papers()}
    assert stored == {p.id: p.content_hash for p in expected}


def load_corpus_like(papers: list[Paper]) -> list[Paper]:
    """What load_corpus keeps of papers seen in this order: the last version of each id."""
    by_id: dict[str, Paper] = {}
    for paper in papers:
        by_id[paper.id] = paper
    return list(by_id.values())


def test_jsonl_and_load_corpus_agree_with_the_stream(settings: Settings, tmp_path: Path) -> None:
    rows = [{"title": p.title, "abstract": p.raw_abstract} for p in make_papers(40)]
    rows += [{"title": "paper 3 ON topic 3", "abstract": "A newer version of paper three, with new results."}]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    store = Store(settings, HashEmbedder())
    report = store.ingest_files([corpus])
    expected = load_corpus([corpus])
    assert report.papers == len(expected) == 40 and report.papers_read == 41
    assert {p.id: p.abstract for p in store.all_papers()} == {p.id: p.abstract for p in expected}


def test_another_embedder_gets_its_own_collection_and_says_why(settings: Settings) -> None:
    first = Store(settings, HashEmbedder())
    first.ingest(make_papers(3))
    other = Store(settings, OtherDimEmbedder())
    assert other.is_empty() and other.name != first.name
    assert index_fingerprint(OtherDimEmbedder.name, settings) != index_fingerprint(HashEmbedder.name, settings)
    note = other.explain()
    assert f"using collection {other.name}" in note and "openai:other-model:128d (128-d)" in note
    assert "is built anew" in note and f"{first.name} (3 chunks; embedder hash-bow-test (256-d)" in note
    other.ingest(make_papers(2))
    assert (first.chunks.count(), other.chunks.count()) == (3, 2)  # never mixed
    assert Store(settings, HashEmbedder()).name == first.name  # nothing changed: the same index is found


def test_packaged_embedder_keeps_its_fingerprint(settings: Settings) -> None:
    # Indexes built before server embedders existed must still be found: the basis is unchanged.
    import hashlib

    from assistant.chunking import chunking_fingerprint

    basis = f"all-MiniLM-L6-v2-onnx-int8|{chunking_fingerprint(settings.chunking)}|title-prefixed"
    assert index_fingerprint("all-MiniLM-L6-v2-onnx-int8", settings) == hashlib.sha1(basis.encode()).hexdigest()[:10]


def test_prune_in_the_stream_removes_papers_and_their_chunks(settings: Settings) -> None:
    store = Store(settings, HashEmbedder())
    store.ingest(make_papers(600))
    report = store.ingest(iter(make_papers(600)[:250]), prune=True)
    assert (report.papers, report.chunks_total, report.papers_removed, report.chunks_removed) == (250, 250, 350, 350)


def test_openai_embed_backend_without_server_settings_says_what_to_set() -> None:
    from assistant.backends import make_embedder

    with pytest.raises(ModelError, match="PAPER_ASSISTANT_EMBED__BASE_URL"):
        make_embedder(Settings(embed={"backend": "openai"}).embed)


@pytest.mark.e2e
def test_cli_ingest_reports_bad_lines_and_skips_them_with_skip_bad(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"title": "Graph networks for molecules",
                                                 "abstract": "We predict molecule properties with graph networks."},
                                                "{oops", {"title": "Speech pre-training",
                                                          "abstract": "We pre-train speech models on audio."}])
    env = {**os.environ, "PAPER_ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "assistant", "ingest", str(corpus)]
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert refused.returncode == 1 and f"{corpus}:2: not valid JSON" in refused.stderr
    done = subprocess.run([*cmd, "--skip-bad", "--json"], env=env, capture_output=True, text=True, timeout=600,
                          cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert (report["papers"], report["bad_lines_skipped"], report["embedder"]) == (2, 1, "all-MiniLM-L6-v2-onnx-int8")
    assert f"skipped {corpus}:2: not valid JSON" in done.stderr
    assert f"using collection {report['collection']}" in done.stderr
    assert "embedding chunks: 100%" in done.stderr and "2/2" in done.stderr and "papers/s" in done.stderr


def test_an_index_without_records_reuses_its_chunks_and_says_so(settings: Settings) -> None:
    # An index built before paper records moved to <name>-records has chunks and no records there.
    papers = make_papers(5)
    store = Store(settings, HashEmbedder())
    store.ingest(papers)
    store._client.delete_collection(store.papers.name)
    old = Store(settings, HashEmbedder())
    assert old.is_empty() and "the next ingest writes them" in old.explain()
    counting = CountingEmbedder()
    report = Store(settings, counting).ingest(papers)
    assert (report.chunks_added, report.papers) == (0, 5)
    assert counting.texts == 4 * 5  # each paper's title and three sentences; no chunk embedded again
