"""Run the benchmarks: `python -m benchmarks.run [--only NAME ...] [--json]`.

Prints one table (each figure, its same-run baseline, the ratio, the target) to stdout, or the
JSON with --json; progress goes to stderr. Exits 1 when a figure misses its stated target. Writes
artifacts/benchmarks.json, keeping the entries of benchmarks not run this time. Benchmarks: ingest,
retrieval, answer, memory, load, scale (see their modules); scale is not part of a run without --only
(it ingests 360k abstracts).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import ARTIFACT, Result, Row, loadavg, log, machine

NAMES = ("ingest", "retrieval", "answer", "memory", "load", "scale", "llm_options")
DEFAULT_NAMES = NAMES[:-2]


def _runner(name: str, args: argparse.Namespace) -> Callable[[], Result]:
    if name == "ingest":
        from . import ingest

        return ingest.run
    if name == "retrieval":
        from . import retrieval

        return lambda: retrieval.run(sizes=tuple(args.sizes), queries=args.queries)
    if name == "answer":
        from . import answer

        return lambda: answer.run(count=args.questions)
    if name == "scale":
        from . import scale

        return lambda: scale.run(sizes=tuple(args.scale_sizes), queries=args.queries, keep=args.keep,
                                 serve=args.serve, rates=not args.no_rates, http=args.http, baseline=args.baseline,
                                 baseline_max=args.baseline_max)
    if name == "llm_options":
        from . import llm_options

        return lambda: llm_options.run(count=args.questions, options=args.options)
    if name == "load":
        from . import load

        return lambda: load.run(clients=args.clients, window_s=args.window)
    from . import memory

    return memory.run


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def render(rows: list[Row]) -> str:
    """The rows as a fixed-width table."""
    header = ("benchmark", "metric", "value", "unit", "baseline", "baseline value", "ratio", "target", "ok")
    body = [
        (r.benchmark, r.metric, _fmt(r.value), r.unit, r.baseline or "-", _fmt(r.baseline_value), _fmt(r.ratio),
         r.target or "-", {True: "yes", False: "NO", None: "-"}[r.ok])
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print the table (or JSON), and update the artifact."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=NAMES, help="run only this benchmark (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the JSON written to the artifact")
    parser.add_argument("--questions", type=int, default=10, help="answer benchmark: questions per system")
    parser.add_argument("--queries", type=int, default=40, help="retrieval benchmark: questions per index size")
    parser.add_argument("--options", nargs="+", default=None,
                        help="llm_options benchmark: options to compare with today's defaults (default: all)")
    parser.add_argument("--clients", type=int, default=50, help="load benchmark: concurrent clients")
    parser.add_argument("--window", type=float, default=90.0, help="load benchmark: seconds the clients keep sending")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="retrieval benchmark: synthetic index sizes in chunks (built once, cached)")
    parser.add_argument("--scale-sizes", type=int, nargs="+", default=[10_000, 100_000, 250_000],
                        help="scale benchmark: synthetic abstracts per index (the largest is killed and resumed)")
    parser.add_argument("--keep", action="store_true", help="scale benchmark: reuse indexes built by an earlier run")
    parser.add_argument("--serve", action="store_true", help="scale benchmark: also peak RSS of serve per index")
    parser.add_argument("--no-rates", action="store_true", help="scale benchmark: skip the embedder rates")
    parser.add_argument("--http", action="store_true",
                        help="scale benchmark: also ingest the largest size into a `chroma run` server")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="scale benchmark: a checkout of older code (e.g. `git archive de86f21`) whose ingest and "
                        "index open are measured in the same run, as the baseline")
    parser.add_argument("--baseline-max", type=int, default=100_000,
                        help="scale benchmark: largest size the baseline code ingests and opens")
    args = parser.parse_args(argv)

    names = args.only or list(DEFAULT_NAMES)
    report: dict[str, Any] = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    report.setdefault("benchmarks", {})
    env = machine()
    rows: list[Row] = []
    for name in names:
        log(f"== {name} (load average {loadavg()})")
        started = time.perf_counter()
        result = _runner(name, args)()
        rows.extend(result.rows)
        report["benchmarks"][name] = {
            "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "machine": {**env, "loadavg_end": loadavg()},
            "rows": [r.as_dict() for r in result.rows],
            "details": result.details,
        }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps({name: report["benchmarks"][name] for name in names}, indent=2))
    else:
        print(render(rows))
        print(f"\n{env['cpus']} CPUs, load average at start {env['loadavg_start']}; JSON in {ARTIFACT}")
    log(f"wrote {ARTIFACT}")
    missed = [f"{r.benchmark}: {r.metric} (target {r.target})" for r in rows if r.ok is False]
    if missed:
        log("missed targets: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
