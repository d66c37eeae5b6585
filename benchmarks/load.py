"""Load: many concurrent clients asking a real `paper-assistant serve` for answers past its bounded queue.

`drive()` runs `clients` threads that each ask one question after another until the sending window
closes, waiting out Retry-After whenever the server turns them away, while a probe thread times
/healthz and /v1/papers. Requests already accepted are always waited for. The result says what came
back: complete answers, deliberate `server_busy` 503s (with Retry-After), and anything else.
`run()` (the benchmark) measures one client alone first, as the baseline, then the crowd. The
driver lives in harness/load.py, shared with tests/test_load.py (which asserts on what came back,
never on the times).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from harness.common import answerable_questions, percentile
from harness.load import ANSWER_TIMEOUT_S, PROBE_PATHS, PROBE_TIMEOUT_S, drive, start_load_server
from harness.servers import running

from .common import Result, Row, log


def run(clients: int = 50, window_s: float = 90.0, max_pending: int = 4, max_tokens: int = 96) -> Result:
    """One client alone over the crowd's whole question mix (the baseline), then `clients` at once for
    `window_s` seconds."""
    questions = [q["question"] for q in answerable_questions(24)]
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        log(f"starting `serve` with max_pending={max_pending}")
        with running(start_load_server(Path(tmp), max_pending, max_tokens)) as server:
            log(f"baseline: one client, the same {len(questions)} questions, then idle probes")
            single = _alone(server.url, questions)
            idle = _idle_probes(server.url)
            log(f"load: {clients} clients for {window_s:.0f} s")
            crowd = drive(server.url, questions, clients=clients, window_s=window_s)
    clean = not crowd.unexpected and not crowd.probe_failures
    per_min = len(crowd.answers_s) / (crowd.wall_s / 60)
    single_per_min = 60 / (sum(single) / len(single))
    rows = [
        Row("load", "answer p50, accepted, under load", percentile(crowd.answers_s, 50) / 1000, "s",
            "one client alone, p50", percentile(single, 50) / 1000, note=f"queue of {max_pending}"),
        Row("load", "answer p95, accepted, under load", percentile(crowd.answers_s, 95) / 1000, "s",
            "one client alone, p95", percentile(single, 95) / 1000),
        Row("load", "answers per minute", per_min, "/min", "one client alone", single_per_min, ">= 0.8x",
            per_min >= 0.8 * single_per_min),
        Row("load", "rejection rate (503 server_busy)", crowd.rejected / max(crowd.sent, 1), "",
            target="no other errors", ok=clean, note=f"{crowd.sent} requests from {clients} clients"),
    ]
    for path in PROBE_PATHS:
        loaded_ms = percentile(crowd.probes_s[path], 95)
        rows.append(Row("load", f"GET {path} p95 under load", loaded_ms, "ms", "idle server, p95",
                        percentile(idle[path], 95), "<= 250 ms", loaded_ms <= 250))
    return Result(rows=rows, details={"alone_s": single, "crowd": crowd.summary()})


def _alone(url: str, questions: list[str]) -> list[float]:
    took = []
    with httpx.Client(base_url=url, timeout=ANSWER_TIMEOUT_S) as http:
        for question in questions:
            started = time.perf_counter()
            http.post("/v1/answer", json={"question": question}).raise_for_status()
            took.append(time.perf_counter() - started)
    return took


def _idle_probes(url: str, count: int = 20) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {p: [] for p in PROBE_PATHS}
    with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT_S) as http:
        for _ in range(count):
            for path in PROBE_PATHS:
                started = time.perf_counter()
                http.get(path).raise_for_status()
                samples[path].append(time.perf_counter() - started)
    return samples
