"""The eval metrics are pure functions: table-driven tests."""

from __future__ import annotations

import pytest

from evals import metrics as m
from evals.report import render_html
from evals.runner import CI_SUBSET, load_questions, select


@pytest.mark.parametrize(
    ("ranked", "gold", "k", "hit", "recall", "rr"),
    [
        (["a", "b", "c"], {"a"}, 1, 1.0, 1.0, 1.0),
        (["a", "b", "c"], {"c"}, 2, 0.0, 0.0, 1 / 3),
        (["a", "b", "c"], {"b", "c", "d"}, 3, 1.0, 2 / 3, 0.5),
        ([], {"a"}, 5, 0.0, 0.0, 0.0),
        (["a"], set(), 5, 0.0, 1.0, 0.0),
    ],
)
def test_ranking_metrics(ranked: list[str], gold: set[str], k: int, hit: float, recall: float, rr: float) -> None:
    assert m.hit_at_k(ranked, gold, k) == hit
    assert m.recall_at_k(ranked, gold, k) == pytest.approx(recall)
    assert m.reciprocal_rank(ranked, gold) == pytest.approx(rr)


@pytest.mark.parametrize(
    ("expected", "got", "precision", "recall", "false_abstention"),
    [
        ([True, True, False, False], [True, False, False, True], 0.5, 0.5, 0.5),
        ([True, False], [True, False], 1.0, 1.0, 0.0),
        ([False, False], [False, False], None, None, 0.0),
        ([True], [False], None, 0.0, None),
    ],
)
def test_abstention_scores(expected: list[bool], got: list[bool], precision: float | None, recall: float | None,
                           false_abstention: float | None) -> None:
    assert m.abstention_scores(expected, got) == {"precision": precision, "recall": recall,
                                                  "false_abstention": false_abstention}


@pytest.mark.parametrize(
    ("labels", "predicted", "expected"),
    [
        ([True, True, False, False], [True, False, False, True],
         {"precision": 0.5, "recall": 0.5, "specificity": 0.5, "accuracy": 0.5, "balanced_accuracy": 0.5}),
        ([True, False, False, False], [True, False, False, False],
         {"precision": 1.0, "recall": 1.0, "specificity": 1.0, "accuracy": 1.0, "balanced_accuracy": 1.0}),
        ([True, True], [True, True],
         {"precision": 1.0, "recall": 1.0, "specificity": None, "accuracy": 1.0, "balanced_accuracy": None}),
    ],
)
def test_binary_scores(labels: list[bool], predicted: list[bool], expected: dict[str, float | None]) -> None:
    assert m.binary_scores(labels, predicted) == expected


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0, 2.0, 3.0, 4.0], 50, 2.5), ([5.0], 95, 5.0), ([], 50, None), ([1.0, 2.0], 100, 2.0), ([3.0, 1.0], 0, 1.0)],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert m.percentile(values, q) == expected


def test_citation_scores_and_text_checks() -> None:
    assert m.citation_recall([True, False, True, True]) == 0.75
    assert m.citation_precision([]) is None
    assert m.contains_all("PARSeq reaches 96.0%", ["parseq", "96.0"]) and not m.contains_all("x", ["y"])
    assert m.contains_none("fine", ["You are a"])
    assert m.mean([1.0, None, 0.0]) == 0.5 and m.mean([None]) is None
    prompt = "You answer a researcher's question using only the numbered paper abstracts in the user's message."
    assert m.leaks_prompt("Sure: " + prompt.upper(), prompt)
    assert not m.leaks_prompt("PARSeq reaches 96.0% accuracy [1].", prompt)


def test_question_set_is_complete_and_selection_keeps_every_kind() -> None:
    questions = load_questions()
    kinds = {k: sum(q.kind == k for q in questions) for k in ("single", "multi", "unanswerable", "adversarial")}
    assert len(questions) >= 80 and min(kinds.values()) >= 16
    assert all(q.gold or q.expect == "abstain" for q in questions)
    assert all(q.must_contain == [] for q in questions if q.expect == "abstain")
    picked = select(questions, None, 2, None)
    assert {q.kind for q in picked} == set(kinds) and len(picked) == 8
    assert {q.id for q in select(questions, None, None, CI_SUBSET)} == set(CI_SUBSET)


def test_report_escapes_everything() -> None:
    row = {"id": "x1", "kind": "single", "question": "<script>alert(1)</script>", "expect": "answer",
           "answer": "<img src=x onerror=alert(1)>", "citations": [], "abstained": False, "leaked": False,
           "correct": True, "timings_ms": {"total": 5.0}}
    summary = {"latency_ms": {}, "total_ms": [5.0], "first_token_ms": [], "answer_accuracy": 1.0}
    results = {
        "stamp": {"time": "t", "commit": "c", "index_fingerprint": "f", "model": "m", "questions": 1, "machine": "x"},
        "answers": {"ours": {"summary": summary, "rows": [row]}},
        "retrieval": {},
        "checker": {"threshold": 0.5, "n": 0, "precision": None, "recall": None, "specificity": None,
                    "balanced_accuracy": None, "ms_per_claim_warm": 0.0, "accuracy_by_kind": {}},
    }
    page = render_html(results)
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
