"""The eval suite on the real stack: the checker on its labelled claims, retrieval on the whole
question set, and the fast CI subset of answers, each with thresholds that fail the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Assistant
from evals.runner import CI_SUBSET, eval_checker, eval_retrieval, load_questions, run, write_results

pytestmark = pytest.mark.e2e


def test_support_checker_balanced_accuracy(seed_assistant: Assistant) -> None:
    result = eval_checker(seed_assistant)
    assert result["n"] >= 120
    assert result["balanced_accuracy"] >= 0.9, result["errors"]


def test_retrieval_hit_at_5_on_single_paper_questions(seed_assistant: Assistant) -> None:
    summary = eval_retrieval(seed_assistant, load_questions(), "hybrid")["summary"]
    assert summary["single"]["n"] >= 40 and summary["single"]["hit@5"] >= 0.95
    assert summary["multi"]["recall@5"] >= 0.8


@pytest.mark.slow
def test_ci_subset_answers_meet_thresholds(seed_assistant: Assistant, tmp_path: Path) -> None:
    results = run(seed_assistant.settings, ids=CI_SUBSET, baselines=("bm25", "dense"), progress=False,
                  assistant=seed_assistant)
    path, html = write_results(results, tmp_path)
    assert json.loads(path.read_text())["stamp"]["index_fingerprint"] == seed_assistant.fingerprint
    assert "<h2>Answers</h2>" in html.read_text()
    ours = results["answers"]["ours"]["summary"]
    failures = [r["id"] for r in results["answers"]["ours"]["rows"] if not r["correct"]]
    assert ours["prompt_leaks"] == 0
    assert ours["abstention_on_unanswerable"] >= 0.75, failures
    assert ours["answer_accuracy"] >= 0.5, failures
    assert ours["citation_precision"] is None or ours["citation_precision"] >= 0.9
    assert ours["citation_gold_precision"] is None or ours["citation_gold_precision"] >= 0.8
