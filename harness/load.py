"""The load driver: many clients asking a real `serve` at once, a prober timing /healthz and /v1/papers
meanwhile, and what they got back (answers, deliberate 503 server_busy with Retry-After, anything else).

Used by tests/test_load.py (which asserts on what came back) and benchmarks/load.py (which prints
the figures beside one client alone). Does not judge the figures.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .common import percentile, seed_settings
from .servers import Server, start_serve

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
