"""Load: 50 concurrent clients against a real `paper-assistant serve` (local model, seed index) whose
answer queue holds 4. Every request either gets a complete answer or a deliberate 503 `server_busy`
with Retry-After; /healthz and /v1/papers keep answering while the model is busy; the server log holds
neither the API key nor the prompts. The figures (p50/p95, rejection rate, probe times) are written to
.test-cache/reports/load.json; benchmarks/load.py compares them with one client alone (both drive
the server with harness/load.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from assistant.answering import Prompts
from assistant.api import Assistant
from harness.common import answerable_questions, cache_root
from harness.load import drive, start_load_server
from harness.servers import running

CLIENTS = 50
WINDOW_S = 90.0  # clients keep sending for this long; accepted answers are then waited for
MAX_PENDING = 4
API_KEY = "load-test-key-7f3a9c"
WRONG_KEY = "guessed-key-0b1d2e"


@pytest.mark.e2e
@pytest.mark.slow
def test_fifty_clients_get_answers_or_busy_and_health_stays_up(seed_assistant: Assistant, tmp_path: Path) -> None:
    # seed_assistant: the seed index exists; the server gets a copy of it
    questions = [q["question"] for q in answerable_questions(24)]
    with running(start_load_server(tmp_path, MAX_PENDING, max_tokens=96, api_key=API_KEY)) as server:
        denied = httpx.get(server.url + "/v1/papers", headers={"Authorization": f"Bearer {WRONG_KEY}"}, timeout=30)
        assert denied.status_code == 401
        report = drive(server.url, questions, clients=CLIENTS, window_s=WINDOW_S, api_key=API_KEY)
        assert server.alive()
        log = server.log.read_text(errors="replace")

    summary = report.summary()
    out = cache_root() / "reports" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))

    assert not report.unexpected, summary  # no 5xx except server_busy, no broken or missing answer
    assert report.answers_s and report.rejected, summary  # answers were given, and the queue did fill up
    assert all(s >= 1 for s in report.retry_after_s)
    assert 0 < report.most_pending <= MAX_PENDING, summary
    assert not report.probe_failures, summary  # every probe 200 within its 10 s client timeout
    assert all(len(samples) >= WINDOW_S / 2 for samples in report.probes_s.values()), summary

    # Nothing secret reached the log at the default level: keys, the system prompt, the questions.
    prompts = Prompts.load()
    for secret in (API_KEY, WRONG_KEY, prompts.system[:80], prompts.system[-80:], *questions):
        assert secret not in log, f"{secret[:40]!r} found in the server log"
    assert "Traceback" not in log, log[-3000:]
