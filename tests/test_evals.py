"""The eval suite on the real stack: the checker on its labelled claims (both splits), retrieval on
the dev split, and the gate: it passes with the real model and fails when grounding is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.config import Settings
from evals.gate import check, load_gate
from evals.questions import load_questions, select
from evals.runner import eval_checker, eval_retrieval, gate_questions, run, write_results
from tests.conftest_server import ScriptedChat

pytestmark = pytest.mark.e2e
# A model that invents: a confident figure and a citation for every question.
INVENTED = ["The method reaches 97.3% accuracy on 12 benchmarks [1]. ", "It was trained on 7 trillion tokens [2]."]


def test_support_checker_balanced_accuracy(seed_assistant: Assistant) -> None:
    dev, test = eval_checker(seed_assistant, "dev"), eval_checker(seed_assistant, "test")
    assert dev["n"] >= 150 and test["n"] >= 40  # hard negatives in both splits
    assert dev["balanced_accuracy"] >= 0.85, dev["errors"]
    assert test["balanced_accuracy"] is not None and set(test["accuracy_by_kind"]) >= {"wrong_relation", "swapped_number"}


def test_retrieval_finds_the_gold_papers_on_dev(seed_assistant: Assistant) -> None:
    summary = eval_retrieval(seed_assistant, select(load_questions(), "dev"), "hybrid")["summary"]
    assert summary["quantity"]["n"] >= 40 and summary["quantity"]["hit@5"] >= 0.95
    assert summary["list"]["recall@10"] >= 0.8


@pytest.mark.slow
def test_gate_passes_with_the_real_model(seed_assistant: Assistant, tmp_path: Path) -> None:
    gate = load_gate()
    results = run(seed_assistant.settings, gate_questions(gate["sample"]), baselines=(), progress=False,
                  assistant=seed_assistant, retrieval=False)
    path, html = write_results(results, tmp_path)
    assert json.loads(path.read_text())["stamp"]["index_fingerprint"] == seed_assistant.fingerprint
    assert "Right drafts that were thrown away" in html.read_text()
    summary = results["answers"]["ours"]["summary"]
    assert {r["kind"] for r in results["answers"]["ours"]["rows"]} == {q.kind for q in load_questions()}
    assert check(summary, gate["thresholds"]) == [], {k: summary.get(k) for k in gate["thresholds"]}


def test_gate_fails_when_a_model_invents_and_nothing_is_dropped(seed_settings: Settings, tmp_path: Path) -> None:
    settings = seed_settings.model_copy(update={"drop_unsupported_claims": False})
    inventor = Assistant(settings, chat_model=ScriptedChat(default=list(INVENTED)))
    gate = load_gate()
    results = run(settings, gate_questions(gate["sample"]), baselines=(), progress=False, assistant=inventor,
                  retrieval=False)
    missed = check(results["answers"]["ours"]["summary"], gate["thresholds"])
    assert any(m.startswith("answer_accuracy") for m in missed), missed
    assert any(m.startswith("false_abstention") for m in missed), missed
