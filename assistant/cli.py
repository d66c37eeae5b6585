"""The `paper-assistant` command: ingest | ask | papers | index status | config.

Results go to stdout (`--json` where a program would read them); progress and errors go to
stderr. Every AssistantError becomes one line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .config import Settings
from .errors import AssistantError, InputError


class ProgressBar:
    """A progress bar on stderr (tqdm, as the eval's), fed by `(done, total)` callbacks."""

    def __init__(self, label: str, unit: str = "it") -> None:
        self.label, self.unit = label, unit
        self.bar: tqdm | None = None  # type: ignore[type-arg]

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    return settings


SHOWN_PROBLEMS = 20


def cmd_ingest(args: argparse.Namespace) -> int:
    """Stream corpus files into the index; opens only the store and the embedder (no retriever, no chat model)."""
    from .backends import make_embedder
    from .store import Store

    missing = [p for p in args.paths if not Path(p).is_file()]
    if missing:  # before the store and the embedder open: a mistyped path is one line, not a preamble
        raise InputError(f"{missing[0]}: no such file; give the path of a .txt listing or a .jsonl corpus")
    settings = _settings(args)
    store = Store(settings, make_embedder(settings.embed))
    print(f"paper-assistant: {store.explain()}", file=sys.stderr)
    print(f"paper-assistant: checking {len(args.paths)} file(s) before writing anything", file=sys.stderr)
    report = store.ingest_files([Path(p) for p in args.paths], prune=args.prune, skip_bad=args.skip_bad,
                                progress=ProgressBar("embedding chunks", "papers"))
    for problem in report.problems[:SHOWN_PROBLEMS]:
        print(f"paper-assistant: skipped {problem}", file=sys.stderr)
    if report.bad_lines > SHOWN_PROBLEMS:
        print(f"paper-assistant: ... and {report.bad_lines - SHOWN_PROBLEMS} more bad lines skipped", file=sys.stderr)
    summary = {"index": store.fingerprint, "collection": store.name, "embedder": store.embedder.name,
               "papers": report.papers, "chunks": report.chunks_total, "papers_read": report.papers_read,
               "chunks_embedded": report.chunks_added, "chunks_removed": report.chunks_removed,
               "papers_pruned": report.papers_removed, "bad_lines_skipped": report.bad_lines,
               "seconds": round(report.seconds, 1)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{report.papers} papers, {report.chunks_total} chunks in index {store.fingerprint} "
        f"({report.chunks_added} chunks embedded, {report.chunks_removed} removed, "
        f"{report.papers_removed} papers pruned, {report.bad_lines} bad lines skipped) in {report.seconds:.1f} s"
    )
    return 0


def render_text(answer: dict) -> str:  # type: ignore[type-arg]
    """The answer as a person reads it: text with [n] markers, then the cited titles."""
    lines = [answer["answer"]]
    if answer["citations"]:
        lines.append("")
        lines.extend(f"[{c['key']}] {c['title']}" for c in answer["citations"])
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace) -> int:
    from .api import Assistant

    settings = _settings(args)
    question = " ".join(args.question)
    from .answering import clean_question

    clean_question(question)  # fail fast, before loading anything
    assistant = Assistant.from_settings(settings, progress=ProgressBar("embedding chunks", "papers"))
    answer = assistant.ask(question, top_k=args.top_k).model_dump()
    print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else render_text(answer))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A terminal chat: one question per line, answers streamed; Ctrl-D ends it."""
    from .api import Assistant

    assistant = Assistant.from_settings(_settings(args), progress=ProgressBar("embedding chunks", "papers"))
    print(f"paper-assistant: {len(assistant.papers)} papers indexed. Ask a question (Ctrl-D to quit).", file=sys.stderr)
    while True:
        try:
            question = input("> ")
        except EOFError:
            return 0
        if not question.strip():
            continue
        try:
            for event in assistant.ask_stream(question):
                if event.kind == "token":
                    sys.stderr.write(event.text)
                    sys.stderr.flush()
                elif event.answer is not None:
                    sys.stderr.write("\n")
                    print(render_text(event.answer.model_dump()) + "\n")
        except InputError as exc:
            print(f"paper-assistant: {exc}", file=sys.stderr)


def cmd_papers(args: argparse.Namespace) -> int:
    from .api import Assistant

    assistant = Assistant.from_settings(_settings(args))
    for paper in assistant.papers.values():
        print(f"{paper.id}\t{paper.title}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .backends import make_embedder
    from .store import Store

    settings = _settings(args)
    status = Store(settings, make_embedder(settings.embed)).status()
    print(json.dumps(status.__dict__, indent=2) if args.json else
          f"index {status.fingerprint} at {status.location} (collection {status.collection}): "
          f"{status.papers} papers, {status.chunks} chunks; matches the current settings"
          + (f"; other indexes (built with other settings): {', '.join(status.other_indexes)}"
             if status.other_indexes else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from .app import serve
    from .runtime import check_exposure

    api_key = args.api_key or os.environ.get("PAPER_ASSISTANT_API_KEY") or None
    check_exposure(args.host, api_key)  # fail fast, before loading anything
    serve(_settings(args), host=args.host, port=args.port, api_key=api_key)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the eval and write results.json + report.html; --gate and --fail-under make it fail."""
    from evals.gate import check, load_gate, parse_bounds
    from evals.questions import KINDS, load_questions, select
    from evals.runner import gate_questions, run, write_results
    from evals.systems import BASELINES

    baselines = tuple(b for b in (args.baseline or BASELINES) if b != "none")
    unknown = [b for b in baselines + tuple(args.kind or ()) if b not in BASELINES + KINDS]
    if unknown:
        raise InputError(f"unknown baseline or kind {unknown[0]}; baselines: {', '.join(BASELINES)} or none; "
                         f"kinds: {', '.join(KINDS)}")
    try:
        bounds = parse_bounds(args.fail_under or [])
        gate = load_gate() if args.gate else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if gate is not None:
        questions = gate_questions(gate["sample"])
        bounds = {**gate["thresholds"], **bounds}
        baselines = tuple(b for b in baselines if args.baseline)  # the gate runs ours alone unless asked
    else:
        split = None if args.split == "all" else args.split
        questions = select(load_questions(), split, tuple(args.kind) if args.kind else None, args.limit,
                           tuple(args.ids.split(",")) if args.ids else None)
    if not questions:
        raise InputError("no question matches --split/--kind/--ids; see evals/data/questions.jsonl")
    before = Path(args.before) if args.before else None
    if before is not None and not (before / "assistant" / "api.py").is_file():
        raise InputError(f"--before {before}: not a checkout of paper-assistant; make one with "
                         "`git worktree add DIR COMMIT`")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run(_settings(args), questions, baselines=baselines, progress=not args.quiet,
                  retrieval=not args.gate, before=before, partial=out / "partial.json")
    path, html = write_results(results, out)
    print(render_eval(results))
    print(f"results: {path}\nreport:  {html}")
    missed = check(results["answers"]["ours"]["summary"], bounds)
    if missed:
        print("paper-assistant: eval below threshold: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


def render_eval(results: dict) -> str:  # type: ignore[type-arg]
    """The eval's headline table: one row per system, then correctness per kind."""
    from evals.questions import KINDS

    cols = [("answer_accuracy", "correct"), ("gold_precision", "gold P"), ("gold_recall", "gold R"),
            ("gold_precision_multi", "multi P"), ("gold_recall_multi", "multi R"),
            ("faithfulness_draft", "draft faith"), ("discarded_correct", "discarded"),
            ("abstention_on_unanswerable", "abstain unans"), ("false_abstention", "false abst"),
            ("prompt_leaks", "leaks")]

    def fmt(v: object) -> str:
        return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    answers = results["answers"]
    lines = ["system            " + " ".join(f"{label:>13}" for _, label in cols) + "   p50 s   p95 s"]
    for name, data in answers.items():
        s = data["summary"]
        lat = s["latency_ms"]["total"]
        lines.append(f"{name:<18}" + " ".join(f"{fmt(s.get(k)):>13}" for k, _ in cols)
                     + f"  {fmt((lat['p50'] or 0) / 1000):>6}  {fmt((lat['p95'] or 0) / 1000):>6}")
    kinds = [k for k in KINDS if any(k in d["summary"]["by_kind"] for d in answers.values())]
    lines.append("")
    lines.append("correct / gold P / gold R by kind")
    lines.append("system            " + " ".join(f"{k[:14]:>16}" for k in kinds))
    for name, data in answers.items():
        by = data["summary"]["by_kind"]
        cells = [f"{fmt(by[k]['correct'])}/{fmt(by[k]['gold_precision'])}/{fmt(by[k]['gold_recall'])}"
                 if k in by else "-" for k in kinds]
        lines.append(f"{name:<18}" + " ".join(f"{c:>16}" for c in cells))
    for split, c in results["checker"].items():
        lines.append(f"checker ({split}, {c['n']} claims): balanced accuracy {fmt(c['balanced_accuracy'])}")
    return "\n".join(lines)


def cmd_config(args: argparse.Namespace) -> int:
    print(Settings().model_dump_json(indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="paper-assistant", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where the index and model cache live (PAPER_ASSISTANT_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="add corpus files (.txt listing or .jsonl of {title, abstract}) to the index")
    p.add_argument("paths", nargs="+")
    p.add_argument("--prune", action="store_true", help="remove papers that are not in these files")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count bad lines (reported as file:line) instead of refusing the whole run")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="answer a question, citing paper titles")
    p.add_argument("question", nargs="+")
    p.add_argument("--json", action="store_true", help="print the full answer object")
    p.add_argument("--top-k", type=int, default=None, help="papers to retrieve")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="ask questions in the terminal, one per line")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("papers", help="list indexed papers (id and title)")
    p.set_defaults(func=cmd_papers)

    p = sub.add_parser("index", help="index commands")
    isub = p.add_subparsers(dest="index_command", required=True)
    s = isub.add_parser("status", help="papers, chunks, fingerprint and location of the index")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    p = sub.add_parser("serve", help="serve the chat UI at / and the HTTP API at /v1 (one process)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--api-key", default=None,
                   help="bearer token the API requires (PAPER_ASSISTANT_API_KEY); needed off loopback")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="run the eval suite; writes results.json and report.html")
    p.add_argument("--split", choices=["dev", "test", "all"], default="dev",
                   help="questions of this split (default dev; test is for reporting only)")
    p.add_argument("--kind", action="append", help="only questions of this kind (repeatable)")
    p.add_argument("--ids", help="only these question ids, comma-separated")
    p.add_argument("--limit", type=int, help="at most N questions of each kind")
    p.add_argument("--baseline", action="append", help="bm25, dense, citation_engine or none (repeatable)")
    p.add_argument("--gate", action="store_true",
                   help="run the gate's seeded sample of the dev split and fail below evals/gate.json's thresholds")
    p.add_argument("--out", default="artifacts/eval", help="output folder")
    p.add_argument("--fail-under", action="append", metavar="METRIC=VALUE",
                   help="exit 1 if a metric of ours misses VALUE (lower-is-better metrics: if it exceeds it)")
    p.add_argument("--before", metavar="DIR",
                   help="also run the assistant of this checkout (e.g. `git worktree add DIR HEAD~1`) as system "
                   "'before', question by question in the same run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("config", help="print the effective settings")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
        print(f"paper-assistant: {exc}", file=sys.stderr)
        return 2
    except AssistantError as exc:
        print(f"paper-assistant: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
