"""The `paper-assistant` command: ingest | ask | papers | index status | config.

Results go to stdout (`--json` where a program would read them); progress and errors go to
stderr. Every AssistantError becomes one line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import Settings
from .errors import AssistantError, InputError


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressBar:
    """A one-line progress bar on stderr with count, rate and time left."""

    def __init__(self, label: str, unit: str = "") -> None:
        self.label = label
        self.unit = f" {unit}" if unit else ""
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        rate = done / elapsed
        filled = int(30 * done / max(total, 1))
        end = "\n" if done >= total else ""
        eta = f", {_duration((total - done) / rate)} left" if 0 < done < total else ""
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}{self.unit} "
                         f"{rate:.1f}/s{eta}{end}")
        sys.stderr.flush()


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

    clean_question(question, settings.max_question_tokens)  # fail fast, before loading anything
    assistant = Assistant.from_settings(settings, progress=ProgressBar("embedding chunks"))
    if args.json:
        print(json.dumps(assistant.ask(question, top_k=args.top_k).model_dump(), indent=2, ensure_ascii=False))
        return 0
    answer = None
    for event in assistant.ask_stream(question, top_k=args.top_k):
        if event.kind == "answer":
            answer = event.answer
    assert answer is not None
    print(render_text(answer.model_dump()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A terminal chat: one question per line, answers streamed; Ctrl-D ends it."""
    from .api import Assistant

    assistant = Assistant.from_settings(_settings(args), progress=ProgressBar("embedding chunks"))
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

    from .server import check_exposure, serve

    api_key = args.api_key or os.environ.get("PAPER_ASSISTANT_API_KEY") or None
    check_exposure(args.host, api_key)  # fail fast, before loading anything
    serve(_settings(args), host=args.host, port=args.port, api_key=api_key)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the eval suite and write results.json + report.html; thresholds make it fail."""
    from evals.runner import BASELINES, CI_SUBSET, run, write_results

    baselines = tuple(b for b in (args.baseline or BASELINES) if b != "none")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise InputError(f"unknown baseline {unknown[0]}; choose from {', '.join(BASELINES)} or none")
    results = run(_settings(args), only=args.only, limit=args.limit, ids=CI_SUBSET if args.ci_subset else None,
                  baselines=baselines, progress=not args.quiet)
    path, html = write_results(results, Path(args.out))
    ours = results["answers"]["ours"]["summary"]
    print(json.dumps({"results": str(path), "report": str(html), "ours": {
        k: ours[k] for k in ("answer_accuracy", "citation_precision", "citation_recall", "abstention_on_unanswerable",
                             "false_abstention", "prompt_leaks")},
        "retrieval_hit@5_single": results["retrieval"]["ours"]["summary"]["single"]["hit@5"],
        "checker_balanced_accuracy": results["checker"]["balanced_accuracy"]}, indent=2))
    failed = []
    for rule in args.fail_under or []:
        name, _, floor = rule.partition("=")
        value = ours.get(name, results["checker"].get(name))
        if value is None or value < float(floor):
            failed.append(f"{name}={value} < {floor}")
    if failed:
        print("paper-assistant: eval below threshold: " + "; ".join(failed), file=sys.stderr)
        return 3
    return 0


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
    p.add_argument("--limit", type=int, help="at most N questions of each kind")
    p.add_argument("--only", choices=["single", "multi", "unanswerable", "adversarial"])
    p.add_argument("--baseline", action="append", help="bm25, dense, citation_engine or none (repeatable)")
    p.add_argument("--ci-subset", action="store_true", help="the fixed fast subset CI runs")
    p.add_argument("--out", default="artifacts/eval", help="output folder")
    p.add_argument("--fail-under", action="append", metavar="METRIC=VALUE", help="exit 3 if a metric of ours is lower")
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
