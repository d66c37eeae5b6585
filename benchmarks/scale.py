"""Growth: streaming ingest of 10k, 100k and 250k synthetic abstracts, then retrieval on what was built.

For each size, in one run:
  ingest    `Store.ingest_files` of a synthetic JSONL into a fresh index, in a child process whose
            peak RSS (VmHWM) is read from /proc: the figure that must stay under 1.5 GiB. The
            child loads the packaged MiniLM as `ingest` does, but embeds with the deterministic
            stand-in of benchmarks/synthetic.py (seed-sentence vectors, under MiniLM's name):
            at ~9 chunks/s the real model would take hours, and memory, batching and resume do
            not depend on what the vectors mean. The largest size is killed (SIGKILL) part-way
            and ingested again: the second run must embed only what the first did not store.
  open      in a fresh process (benchmarks/open_probe.py), twice: right after the ingest (BM25 is built
            and saved then) and again (BM25 loaded, memory-mapped); each time the first question and
            the cold/warm cost of further ones, with the texts embedded per question beyond the
            question itself (sentences of unseen papers: 0 once they are stored at ingest).
            With --baseline TREE (a checkout of an older commit), the same ingest and probe run
            that code on its own index, so open time and first-question cost have a same-run
            baseline (sizes up to --baseline-max).
  retrieval p50/p95 of `HybridRetriever.hits` and `.passages` and the time to open the index in
            this process, questions embedded by the real MiniLM and interleaved across sizes; the
            ratio to the smallest size is the figure (target: p50 at the largest <= 2x).
  serve     optionally (--serve), peak RSS of `paper-assistant serve` over each index after one answer.
Separately, `rates` measures real ingest throughput on the same 20 synthetic abstracts with the
packaged embedder and with llama-cpp-python's OpenAI-compatible server (embeddings on, the
packaged GGUF, mean pooling) through `embed.backend = openai`.
Run: `python -m benchmarks.run --only scale` (the JSONL files and the embeddings table are cached).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.backends import MiniLMEmbedder, OpenAIEmbedder
from assistant.config import Settings
from assistant.corpus import load_corpus, make_paper
from assistant.store import Store
from assistant.text import split_sentences
from harness.common import QUESTIONS_FILE, REPO, cache_root, load_questions, model_path

from .common import Result, Row, log
from .synthetic import SentenceTable, SyntheticEmbedder, synthetic_row, write_synthetic_jsonl

SIZES = (10_000, 100_000, 250_000)
MEMORY_LIMIT_BYTES = int(1.5 * 2**30)
SERVE_LIMIT_BYTES = 3 * 10**9
OPEN_LIMIT_S = 5.0  # at 100k chunks and more: the target
PROBE_QUESTIONS = 21  # the first question, then 20 timed cold and warm
P50_RATIO_LIMIT = 2.0
KILL_AT = 0.4  # the largest ingest is killed when this share of its papers is written
RATE_PAPERS = 20
PROGRESS = re.compile(rb"(\d+)/(\d+) papers")


def _root() -> Path:
    return cache_root() / "bench-scale"


def _seeds_and_sentences() -> tuple[list[Any], list[str]]:
    seeds = load_corpus(Settings().corpus.seed_paths)
    return seeds, list(dict.fromkeys(s for p in seeds for s in split_sentences(p.abstract)))


def _child_ingest(data_dir: Path, corpus: Path) -> None:
    """In the child: open the store as `ingest` does (MiniLM loaded), embed with the stand-in, report as JSON."""
    from assistant.cli import ProgressBar
    from harness.servers import peak_rss_bytes

    settings = Settings(data_dir=data_dir)
    real = MiniLMEmbedder(settings.embed)
    table = SentenceTable(load_corpus(Settings().corpus.seed_paths), real)
    store = Store(settings, SyntheticEmbedder(table, real.name, real.dim))
    print(store.explain(), file=sys.stderr)
    report = store.ingest_files([corpus], progress=ProgressBar("embedding chunks", "papers"))
    print(json.dumps({**report.__dict__, "problems": report.problems[:5], "vm_hwm_bytes": peak_rss_bytes(os.getpid())}))


def _tree_env(tree: Path) -> dict[str, str]:
    """Environment that makes a child import `assistant` and `benchmarks` from `tree`, sharing our caches."""
    return {**os.environ, "PYTHONPATH": str(tree), "PAPER_ASSISTANT_TEST_CACHE": str(cache_root())}


def ingest_in_child(data_dir: Path, corpus: Path, kill_at: float | None = None,
                    env: dict[str, str] | None = None, tree: Path = REPO) -> dict[str, Any]:
    """Run one ingest in a child process; with `kill_at`, SIGKILL it once that share of papers is written.
    `env` adds settings (PAPER_ASSISTANT_STORE__KIND=http ...); `tree` is the code that ingests."""
    from harness.servers import peak_rss_bytes

    log_path = data_dir.parent / f"{data_dir.name}-ingest.log"
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child-ingest", str(data_dir), str(corpus)]
    started = time.perf_counter()
    with log_path.open("wb") as err:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=tree,
                                 env={**_tree_env(tree), **(env or {})})
        if kill_at is not None:
            done = total = 0
            while child.poll() is None:
                found = PROGRESS.findall(log_path.read_bytes()[-400:])
                if found:
                    done, total = (int(x) for x in found[-1])
                    if done >= kill_at * total:
                        peak = peak_rss_bytes(child.pid)
                        os.kill(child.pid, signal.SIGKILL)
                        child.wait(60)
                        return {"killed": True, "papers_done_at_kill": done, "papers_total": total,
                                "vm_hwm_bytes": peak, "seconds": round(time.perf_counter() - started, 1)}
                time.sleep(0.5)
        out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"ingest child failed ({child.returncode}):\n{log_path.read_text(errors='replace')[-2000:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


def build(size: int, interrupt: bool, keep: bool, tree: Path = REPO,
          label: str = "index") -> tuple[Settings, dict[str, Any]]:
    """Ingest `size` synthetic abstracts into a fresh index (killed once and resumed with `interrupt`),
    with the code in `tree`."""
    seeds, sentences = _seeds_and_sentences()
    corpus = write_synthetic_jsonl(_root() / f"abstracts-{size}.jsonl", size, seeds, sentences)
    data_dir = _root() / f"{label}-{size}"
    settings = Settings(data_dir=data_dir)
    marker = data_dir / "built.json"
    if keep and marker.exists():
        log(f"{size}: reusing the index in {data_dir}")
        return settings, json.loads(marker.read_text())
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    info: dict[str, Any] = {"abstracts": size, "corpus_bytes": corpus.stat().st_size}
    if interrupt:
        log(f"{size}: ingest, killed at {KILL_AT:.0%} of the papers")
        info["interrupted"] = ingest_in_child(data_dir, corpus, kill_at=KILL_AT)
        stored = Store(settings, _NameOnly()).chunks.count()
        info["interrupted"]["chunks_stored_at_kill"] = stored
        log(f"{size}: killed with {stored} chunks stored; ingest again")
    else:
        log(f"{size}: ingest ({label}, code in {tree})")
    info["ingest"] = ingest_in_child(data_dir, corpus, tree=tree)
    marker.write_text(json.dumps(info))
    return settings, info


def probe_in_child(data_dir: Path, tree: Path = REPO) -> dict[str, Any]:
    """benchmarks/open_probe.py over `data_dir` in a fresh process running the code in `tree`."""
    # Run by path, with the tree as the working directory (sys.path[0]), so `assistant` comes from the tree.
    script = Path(__file__).with_name("open_probe.py")
    args = [str(data_dir), str(QUESTIONS_FILE), str(PROBE_QUESTIONS)]
    code = f"import runpy, sys; sys.argv = {[str(script), *args]!r}; runpy.run_path({str(script)!r}, run_name='__main__')"
    cmd = [sys.executable, "-c", code]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=_tree_env(tree), timeout=3600,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"open probe failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class _NameOnly:
    """Opens an index built under MiniLM's name without loading anything (counts only; never embeds)."""

    name = MiniLMEmbedder.name
    dim = MiniLMEmbedder.dim

    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("this store is opened to count records only")


def measure_retrieval(sizes: list[tuple[int, Settings]], queries: int) -> dict[int, dict[str, Any]]:
    """p50/p95 and open time at each size. Every index is opened first, then each question is timed
    on every size in turn, so a change of machine load during the run hits all sizes alike."""
    from assistant.retrieval import HybridRetriever, SentenceIndex
    from harness.common import percentile

    from .common import stopwatch
    from .retrieval import WARMUP

    embedder = MiniLMEmbedder(Settings().embed)
    questions = [row["question"] for row in load_questions()][: queries + WARMUP]
    opened: dict[int, tuple[Store, Any, float]] = {}
    for size, settings in sizes:
        store = Store(settings, embedder)
        started = time.perf_counter()
        retriever = HybridRetriever(store, settings.retrieval, SentenceIndex(embedder, store.sentences))
        opened[size] = (store, retriever, time.perf_counter() - started)
        log(f"{size}: retriever opened in {opened[size][2]:.1f} s")
    variants = ("embed", "bare", "dense", "bm25", "hits", "retrieve", "retrieve_warm")
    samples = {size: {v: [] for v in variants} for size in opened}  # type: ignore[var-annotated]
    for n, question in enumerate(questions):
        for size, (store, retriever, _) in opened.items():
            if n < WARMUP:
                retriever.passages(question)
                continue
            got = samples[size]
            with stopwatch(got["embed"]):
                vector = embedder.embed([question])[0].tolist()
            with stopwatch(got["bare"]):
                store.chunks.query(query_embeddings=[vector], n_results=retriever.settings.candidates)
            with stopwatch(got["dense"]):
                retriever.hits(question, mode="dense")
            with stopwatch(got["bm25"]):
                retriever.hits(question, mode="bm25")
            with stopwatch(got["hits"]):
                retriever.hits(question)
            with stopwatch(got["retrieve"]):
                retriever.passages(question)
            with stopwatch(got["retrieve_warm"]):
                retriever.passages(question)
    return {
        size: {"papers": store.papers.count(), "chunks": store.chunks.count(), "open_seconds": round(open_s, 2),
               "p50_ms": {k: round(percentile(v, 50), 2) for k, v in samples[size].items()},
               "p95_ms": {k: round(percentile(v, 95), 2) for k, v in samples[size].items()},
               "queries": len(questions) - WARMUP}
        for size, (store, _, open_s) in opened.items()
    }


def measure_http_ingest(size: int) -> dict[str, Any]:
    """The same ingest into a real `chroma run` server: peak RSS of the ingest process and of the server.

    With the embedded store the HNSW indexes being written live in the ingest process and grow
    with it; with a Chroma server they live there, and the ingest process stays flat."""
    from harness.servers import peak_rss_bytes, running, start_chroma

    seeds, sentences = _seeds_and_sentences()
    corpus = write_synthetic_jsonl(_root() / f"abstracts-{size}.jsonl", size, seeds, sentences)
    root = _root() / f"http-{size}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with running(start_chroma(root / "chroma-server", root / "logs")) as server:
        env = {"PAPER_ASSISTANT_STORE__KIND": "http", "PAPER_ASSISTANT_STORE__HOST": "127.0.0.1",
               "PAPER_ASSISTANT_STORE__PORT": str(server.port)}
        report = ingest_in_child(root / "data", corpus, env=env)
        report["chroma_server_vm_hwm_bytes"] = peak_rss_bytes(server.pid)
    return report


def measure_serve(settings: Settings) -> dict[str, Any]:
    """Peak RSS of `serve` over an index after one answer (the packaged model answering)."""
    import httpx

    from harness.servers import peak_rss_bytes, running, start_serve

    with tempfile.TemporaryDirectory(prefix="bench-scale-serve-") as tmp:
        started = time.perf_counter()
        with running(start_serve(settings.data_dir, model_path(), Path(tmp))) as server:
            ready_s = time.perf_counter() - started
            reply = httpx.post(f"{server.url}/v1/answer", json={"question": load_questions()[0]["question"]},
                               timeout=900)
            reply.raise_for_status()
            peak = peak_rss_bytes(server.pid)
    return {"vm_hwm_bytes": peak, "ready_seconds": round(ready_s, 1)}


def measure_rates() -> dict[str, Any]:
    """Real ingest throughput (chunks/s) on the same synthetic abstracts: packaged MiniLM vs an embeddings server."""
    from harness.embed_server import start_embedding_server
    from harness.servers import running

    seeds, sentences = _seeds_and_sentences()
    papers = [make_paper(*synthetic_row(i, seeds, sentences), f"rate:{i}") for i in range(RATE_PAPERS)]
    rates: dict[str, Any] = {}

    def ingest_with(label: str, settings: Settings, embedder: Any) -> None:
        report = Store(settings, embedder).ingest(papers)
        rates[label] = {"chunks": report.chunks_added, "seconds": round(report.seconds, 1),
                        "chunks_per_s": round(report.chunks_added / report.seconds, 2), "embedder": embedder.name}
        log(f"rate, {label}: {rates[label]}")

    with tempfile.TemporaryDirectory(prefix="bench-rates-") as tmp:
        local = Settings(data_dir=Path(tmp) / "local")
        ingest_with("local", local, MiniLMEmbedder(local.embed))
        log("starting llama_cpp.server with embeddings on (the packaged GGUF)")
        with running(start_embedding_server(model_path(), Path(tmp) / "logs")) as server:
            # A 1.5B model on two shared cores: small requests and a long timeout.
            embed = {"backend": "openai", "base_url": f"{server.url}/v1", "model": server.name, "batch_size": 8,
                     "timeout_s": 900}
            remote = Settings(data_dir=Path(tmp) / "server", embed=embed)
            ingest_with("server", remote, OpenAIEmbedder(remote.embed))
    return rates


def local_rate_in_child(tree: Path, corpus: Path, data_dir: Path) -> dict[str, Any]:
    """`Store.ingest` of `corpus` with the packaged MiniLM, in a fresh process running the code in `tree`
    (what a real ingest costs: chunks, plus whatever else that code embeds per paper)."""
    code = ("import json; from pathlib import Path; from assistant.config import Settings; "
            "from assistant.backends import MiniLMEmbedder; from assistant.corpus import load_corpus; "
            "from assistant.store import Store; "
            f"s = Settings(data_dir=Path({str(data_dir)!r})); e = MiniLMEmbedder(s.embed); e.embed(['warm up']); "
            f"r = Store(s, e).ingest(load_corpus([Path({str(corpus)!r})])); "
            "print(json.dumps({'papers': r.papers, 'chunks': r.chunks_added, 'seconds': r.seconds}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree, env=_tree_env(tree),
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rate child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    got["papers_per_s"] = round(got["papers"] / got["seconds"], 2)
    got["chunks_per_s"] = round(got["chunks"] / got["seconds"], 2)
    return got


def measure_local_rates(baseline: Path, papers: int = 2 * RATE_PAPERS) -> tuple[dict[str, Any], Row]:
    """Real ingest rate with the packaged MiniLM, ours beside the baseline tree's, on the same abstracts."""
    seeds, sentences = _seeds_and_sentences()
    with tempfile.TemporaryDirectory(prefix="bench-local-rate-") as tmp:
        corpus = write_synthetic_jsonl(Path(tmp) / "rate.jsonl", papers, seeds, sentences)
        ours = local_rate_in_child(REPO, corpus, Path(tmp) / "ours")
        base = local_rate_in_child(baseline, corpus, Path(tmp) / "baseline")
    log(f"local ingest rate: ours {ours}, baseline {base}")
    return {"ours": ours, "baseline": base}, Row(
        "scale", f"ingest rate, packaged MiniLM, {papers} synthetic abstracts", ours["papers_per_s"], "papers/s",
        "baseline code (no sentence vectors at ingest)", base["papers_per_s"],
        note=f"chunks/s {ours['chunks_per_s']} vs {base['chunks_per_s']}")


def measure_open(size: int, settings: Settings, info: dict[str, Any], baseline: Path | None,
                 baseline_max: int) -> tuple[dict[str, Any], list[Row]]:
    """Open time and first-question cost in fresh processes: after the ingest, again, and (with a baseline
    tree, up to `baseline_max` abstracts) the baseline's code over an index it built itself."""
    opened: dict[str, Any] = {"after_ingest": probe_in_child(settings.data_dir)}
    opened["reopen"] = probe_in_child(settings.data_dir)
    chunks = info["ingest"]["chunks_total"]
    if baseline is not None and size <= baseline_max:
        base_settings, base_info = build(size, interrupt=False, keep=True, tree=baseline, label="baseline")
        opened["baseline_build"] = base_info
        opened["baseline"] = probe_in_child(base_settings.data_dir, tree=baseline)
    log(f"{size}: open {json.dumps(opened.get('reopen'))}")
    where = f"{size} abstracts ({chunks} chunks)"
    base = opened.get("baseline")
    rows = []
    for key, what in (("after_ingest", "index open right after ingest (BM25 built and saved)"),
                      ("reopen", "index open (BM25 loaded, memory-mapped)")):
        target, ok = "", None
        if key == "reopen" and chunks >= 100_000:
            target, ok = f"<= {OPEN_LIMIT_S:g} s", opened[key]["open_seconds"] <= OPEN_LIMIT_S
        rows.append(Row("scale", f"{what}, {where}", opened[key]["open_seconds"], "s",
                        "baseline code, same index size" if base else "", base["open_seconds"] if base else None,
                        target, ok))
    reopen = opened["reopen"]
    for key, what in (("first_question_ms", "first question after open"),):
        rows.append(Row("scale", f"{what}, {where}", reopen[key], "ms", "baseline code" if base else "",
                        base[key] if base else None))
    rows.append(Row("scale", f"retrieve, papers unseen (cold) p50, {where}", reopen["cold_ms"]["p50"], "ms",
                    "baseline code" if base else "same question warm", (base or {}).get("cold_ms", {}).get("p50")
                    if base else reopen["warm_ms"]["p50"]))
    rows.append(Row("scale", f"texts embedded per cold question beyond the question, {where}",
                    reopen["texts_per_question"], "texts", "baseline code" if base else "",
                    base["texts_per_question"] if base else None, "= 0", reopen["texts_per_question"] == 0))
    return opened, rows


def run(sizes: tuple[int, ...] = SIZES, queries: int = 40, keep: bool = False, serve: bool = False,
        rates: bool = True, http: bool = False, baseline: Path | None = None, baseline_max: int = 100_000) -> Result:
    """Ingest memory and rate, resume, open time and first questions (beside a baseline tree's), retrieval at
    each size; serve memory; embedder rates."""
    table_embedder = MiniLMEmbedder(Settings().embed)
    seeds, _ = _seeds_and_sentences()
    SentenceTable(seeds, table_embedder)  # cached once for the children
    built = [(size, *build(size, interrupt=size == max(sizes), keep=keep)) for size in sorted(sizes)]
    result = Result(details={"sizes": {}})
    gib = 2**30
    for size, settings, info in built:
        opened, rows = measure_open(size, settings, info, baseline, baseline_max)
        result.details["sizes"].setdefault(size, {})["open"] = opened
        result.rows.extend(rows)
    for size, _settings, info in built:
        result.details["sizes"][size]["build"] = info
        ingest = info["ingest"]
        peaks = [ingest["vm_hwm_bytes"]] + ([info["interrupted"]["vm_hwm_bytes"]] if "interrupted" in info else [])
        peak = max(peaks)
        result.rows.append(Row("scale", f"ingest peak RSS, {size} abstracts ({ingest['chunks_total']} chunks)",
                               peak / gib, "GiB", target="<= 1.5 GiB", ok=peak <= MEMORY_LIMIT_BYTES,
                               note="stand-in embedder (deterministic), packaged MiniLM loaded"))
        rate = ingest["chunks_added"] / max(ingest["seconds"], 1e-9)
        result.rows.append(Row("scale", f"ingest rate with the stand-in embedder, {size} abstracts", rate, "chunks/s"))
        if "interrupted" in info:
            killed = info["interrupted"]
            result.rows.append(Row(
                "scale", f"resume after kill -9 at {killed['papers_done_at_kill']}/{killed['papers_total']} papers: "
                "chunks embedded again", ingest["chunks_added"], "chunks",
                "chunks missing after the kill", ingest["chunks_total"] - killed["chunks_stored_at_kill"],
                "= 1.0 (nothing stored is embedded twice)",
                ingest["chunks_added"] == ingest["chunks_total"] - killed["chunks_stored_at_kill"]))
    retrieval = measure_retrieval([(size, settings) for size, settings, _ in built], queries)
    smallest = min(sizes)
    for size, m in retrieval.items():
        result.details["sizes"][size]["retrieval"] = m
        base = retrieval[smallest]
        where = f"{size} abstracts ({m['chunks']} chunks)"
        for name, what in (("hits", "hybrid hits"), ("retrieve", "retrieve, cold sentence cache")):
            for q in (50, 95):
                target, ok = "", None
                if q == 50 and size == max(sizes):
                    target, ok = f"<= {P50_RATIO_LIMIT:g}x", m["p50_ms"][name] <= P50_RATIO_LIMIT * base["p50_ms"][name]
                result.rows.append(Row("scale", f"{what} p{q}, {where}", m[f"p{q}_ms"][name], "ms",
                                       f"same at {smallest} abstracts", base[f"p{q}_ms"][name], target, ok))
        result.rows.append(Row("scale", f"index open in this process (BM25 loaded), {where}", m["open_seconds"], "s",
                               f"same at {smallest} abstracts", base["open_seconds"]))
    if http:
        size = max(sizes)
        log(f"{size}: ingest into a Chroma server")
        h = measure_http_ingest(size)
        result.details["sizes"][size]["http_store_ingest"] = h
        result.rows.append(Row("scale", f"ingest peak RSS with a Chroma server, {size} abstracts",
                               h["vm_hwm_bytes"] / gib, "GiB", "the Chroma server's peak RSS",
                               h["chroma_server_vm_hwm_bytes"] / gib, "<= 1.5 GiB",
                               h["vm_hwm_bytes"] <= MEMORY_LIMIT_BYTES))
    if serve:
        for size, settings, _ in built:
            log(f"serve over the {size} index")
            try:
                s = measure_serve(settings)
            except (RuntimeError, OSError) as exc:  # recorded, so the other figures of a long run survive
                result.details["sizes"][size]["serve"] = {"error": str(exc)[-500:]}
                continue
            result.details["sizes"][size]["serve"] = s
            result.rows.append(Row("scale", f"serve peak RSS after one answer, {size} abstracts",
                                   s["vm_hwm_bytes"] / gib, "GiB", target="<= 3 GB",
                                   ok=s["vm_hwm_bytes"] <= SERVE_LIMIT_BYTES, note=f"ready in {s['ready_seconds']} s"))
    if baseline is not None:
        result.details["local_rates"], row = measure_local_rates(baseline)
        result.rows.append(row)
    if rates:
        r = measure_rates()
        result.details["rates"] = r
        result.rows.append(Row("scale", f"ingest rate, embeddings server ({r['server']['embedder']})",
                               r["server"]["chunks_per_s"], "chunks/s", "packaged MiniLM in-process",
                               r["local"]["chunks_per_s"], note=f"{RATE_PAPERS} synthetic abstracts each"))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child-ingest":
        _child_ingest(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print("run through `python -m benchmarks.run --only scale`", file=sys.stderr)
        raise SystemExit(2)
