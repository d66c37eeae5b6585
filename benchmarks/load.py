"""Load: many concurrent clients asking a real `paper-assistant serve` for answers past its bounded queue.

`drive()` runs `clients` threads that each ask one question after another until the sending window
closes, waiting out Retry-After whenever the server turns them away, while a probe thread times
/healthz and /v1/papers. Requests already accepted are always waited for. The result says what came
back: complete answers, deliberate `server_busy` 503s (with Retry-After), and anything else.
`run()` (the benchmark) measures one client alone first, as the baseline, then the crowd.
Used by tests/test_load.py too, which asserts on what came back, never on the times.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers import Server, running, start_serve

from .common import Result, Row, answerable_questions, log, percentile, seed_settings

ANSWER_TIMEOUT_S = 900.0  # an accepted request may wait behind the whole queue on a busy 2-core machine
PROBE_TIMEOUT_S = 10.0
PROBE_EVERY_S = 0.5
PROBE_PATHS = ("/healthz", "/v1/papers?limit=50")


@dataclass
class LoadReport:
    """What the clients got back, and how long it took."""

    clients: int
    window_s: float
    answers_s: list[float] = field(default_factory=list)  # accepted requests, arrival to complete answer
    rejected: int = 0  # 503 server_busy with Retry-After
    retry_after_s: list[int] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # any other status, a broken answer, a dropped connection
    probes_s: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PROBE_PATHS})
    probe_failures: list[str] = field(default_factory=list)
    most_pending: int = 0  # the highest `pending` /healthz reported
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sent(self) -> int:
        """Requests sent."""
        return len(self.answers_s) + self.rejected + len(self.unexpected)

    def summary(self) -> dict[str, Any]:
        """The figures, in seconds and milliseconds, for printing and the JSON artifact."""
        def pct(samples: list[float], q: float) -> float | None:
            return round(percentile(samples, q), 1) if samples else None

        return {
            "clients": self.clients, "window_s": self.window_s, "wall_s": round(self.wall_s, 1), "sent": self.sent,
            "answered": len(self.answers_s), "rejected": self.rejected,
            "rejection_rate": round(self.rejected / self.sent, 3) if self.sent else None,
            "unexpected": self.unexpected[:10], "unexpected_count": len(self.unexpected),
            "answer_ms_p50": pct(self.answers_s, 50), "answer_ms_p95": pct(self.answers_s, 95),
            "retry_after_s": sorted(set(self.retry_after_s)),
            **{f"probe {p} ms_p50": pct(v, 50) for p, v in self.probes_s.items()},
            **{f"probe {p} ms_p95": pct(v, 95) for p, v in self.probes_s.items()},
            **{f"probe {p} ms_max": round(max(v) * 1000, 1) if v else None for p, v in self.probes_s.items()},
            "probe_failures": self.probe_failures[:10], "most_pending_seen": self.most_pending,
        }


def complete_answer(body: Any) -> bool:
    """True for a whole Answer object: answer text, citations list, a total time."""
    return (isinstance(body, dict) and isinstance(body.get("answer"), str) and bool(body["answer"].strip())
            and isinstance(body.get("citations"), list) and "total" in body.get("timings_ms", {}))


def _client(url: str, questions: list[str], start: int, close_at: float, report: LoadReport,
            headers: dict[str, str]) -> None:
    turn = start
    with httpx.Client(base_url=url, timeout=ANSWER_TIMEOUT_S, headers=headers) as http:
        while time.monotonic() < close_at:
            question = questions[turn % len(questions)]
            turn += 1
            started = time.perf_counter()
            try:
                response = http.post("/v1/answer", json={"question": question})
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                with report.lock:
                    report.unexpected.append(f"{exc.__class__.__name__}: {exc}")
                continue
            took = time.perf_counter() - started
            retry_after = response.headers.get("retry-after", "")
            with report.lock:
                if response.status_code == 200 and complete_answer(body):
                    report.answers_s.append(took)
                elif response.status_code == 503 and body.get("error") == "server_busy" and retry_after.isdigit():
                    report.rejected += 1
                    report.retry_after_s.append(int(retry_after))
                else:
                    report.unexpected.append(f"{response.status_code}: {response.text[:200]}")
            if response.status_code == 503 and retry_after.isdigit():
                time.sleep(max(0.0, min(float(retry_after), close_at - time.monotonic())))


def _prober(url: str, stop: threading.Event, report: LoadReport, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT_S, headers=headers) as http:
        while not stop.wait(PROBE_EVERY_S):
            for path in PROBE_PATHS:
                started = time.perf_counter()
                try:
                    response = http.get(path)
                except httpx.HTTPError as exc:
                    report.probe_failures.append(f"{path}: {exc.__class__.__name__}")
                    continue
                report.probes_s[path].append(time.perf_counter() - started)
                if response.status_code != 200:
                    report.probe_failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                elif path == "/healthz":
                    report.most_pending = max(report.most_pending, int(response.json()["pending"]))


def drive(url: str, questions: list[str], clients: int, window_s: float, api_key: str | None = None) -> LoadReport:
    """`clients` threads asking `questions` for `window_s` seconds, then waiting for accepted answers."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    report = LoadReport(clients=clients, window_s=window_s)
    stop = threading.Event()
    prober = threading.Thread(target=_prober, args=(url, stop, report, headers), daemon=True)
    started = time.monotonic()
    close_at = started + window_s
    workers = [threading.Thread(target=_client, args=(url, questions, i, close_at, report, headers), daemon=True)
               for i in range(clients)]
    prober.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(window_s + ANSWER_TIMEOUT_S)
    stop.set()
    prober.join(PROBE_TIMEOUT_S * 3)
    report.wall_s = time.monotonic() - started
    hung = sum(w.is_alive() for w in workers)
    if hung:
        report.unexpected.append(f"{hung} client(s) still waiting after {ANSWER_TIMEOUT_S:.0f} s")
    return report


def start_load_server(tmp: Path, max_pending: int, max_tokens: int, api_key: str | None = None) -> Server:
    """`serve` over a copy of the seed index (no folder shared with another process), with a bounded queue."""
    settings = seed_settings()
    data_dir = tmp / "data"
    shutil.copytree(settings.store_path, data_dir / "chroma")
    env = {"PAPER_ASSISTANT_SERVE__MAX_PENDING": str(max_pending), "PAPER_ASSISTANT_LLM__MAX_TOKENS": str(max_tokens)}
    return start_serve(data_dir, settings.llm.model_path, tmp / "logs", env=env,
                       args=("--api-key", api_key) if api_key else ())


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
