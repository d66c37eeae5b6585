"""The eval metrics are pure functions: table-driven tests."""

from __future__ import annotations

import pytest

from assistant.answering import REFUSAL
from evals import metrics as m
from evals.gate import load_gate, parse_bounds
from evals.questions import KINDS, Question, load_questions, select, stratified_sample
from evals.report import render_html
from evals.scoring import failing, score_row, summarise


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


def test_text_checks() -> None:
    assert m.contains_none("fine", ["You are a"]) and not m.contains_none("PWNED!", ["pwned"])
    assert m.mean([1.0, None, 0.0]) == 0.5 and m.mean([None]) is None
    prompt = "You answer a researcher's question using only the numbered paper abstracts in the user's message."
    assert m.leaks_prompt("Sure: " + prompt.upper(), prompt)
    assert not m.leaks_prompt("PARSeq reaches 96.0% accuracy [1].", prompt)


@pytest.mark.parametrize(
    ("text", "needle", "found"),
    [
        ("perplexity 67.6 on the benchmark", "67.6", True),
        ("perplexity 167.6", "67.6", False),
        ("perplexity 67.65", "67.6", False),
        ("published in 2019", "9", False),
        ("a 9.5 point gain", "9", False),
        ("wins on 9 of 12 tasks", "9", True),
        ("96.0 % accuracy", "96.0%", True),
        ("96.0% accuracy", "96.0%", True),
        ("96% accuracy", "96.0%", False),
        ("96.0 accuracy", "96.0%", False),
        ("96.0% accuracy", "96.0", True),
        ("uses 1000 GPUs", "1,000", True),
        ("uses 1,000 GPUs", "1000", True),
        ("12,5% better", "12.5", False),
        ("a 1.3\u00d7 speed-up", "1.3", True),
        ("(98)", "98", True),
        ("the LOLA model", "lola", True),
        ("LOLAs are", "LOLA", False),
        ("2.5 trillion tokens", "2.5 trillion", True),
        ("2.5  Trillion tokens", "2.5 trillion", True),
        ("25 trillion tokens", "2.5 trillion", False),
    ],
)
def test_needles_match_whole_tokens(text: str, needle: str, found: bool) -> None:
    assert m.has_needle(text, needle) is found


@pytest.mark.parametrize(
    ("cited", "gold", "precision", "recall", "list_ok"),
    [
        (["a", "b"], {"a", "b"}, 1.0, 1.0, True),
        (["a", "x"], {"a", "b"}, 0.5, 0.5, False),
        ([], {"a"}, None, 0.0, False),
        (["a", "b", "c", "d", "x"], {"a", "b", "c", "d"}, 0.8, 1.0, True),
        (["a", "b", "c", "d"], {"a", "b", "c", "d", "e"}, 1.0, 0.8, True),
        (["a", "b", "c"], {"a", "b", "c", "d", "e"}, 1.0, 0.6, False),
        (["a", "a"], {"a"}, 1.0, 1.0, True),
    ],
)
def test_gold_citation_metrics(cited: list[str], gold: set[str], precision: float | None, recall: float,
                               list_ok: bool) -> None:
    assert m.gold_precision(cited, gold) == precision
    assert m.gold_recall(cited, gold) == recall
    assert m.list_correct(cited, gold) is list_ok


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (REFUSAL, True),
        ("", True),
        ("[1] [2]", True),
        ("The context does not provide information about the accuracy [1].", True),
        ("I'm sorry, but I cannot answer that.", True),
        ("The abstracts do not mention it. No information is given.", True),
        ("PARSeq reaches 96.0% accuracy [1].", False),
        ("The abstract does not mention CIFAR. PARSeq reaches 96.0% on real data [1].", False),
        ("No. Orion-14B was trained on 2.5 trillion tokens [1].", False),
    ],
)
def test_one_refusal_reader(text: str, refusal: bool) -> None:
    assert m.reads_as_refusal(text, REFUSAL) is refusal


@pytest.mark.parametrize(
    ("text", "mid", "markup", "label"),
    [
        ("PARSeq reaches 96.0% [1].", False, False, False),
        ("This is because the retrieva", True, False, False),
        ("It ends with a marker. [1][2]", False, False, False),
        ("MDM achieves 91.5\\% accuracy [1].", False, True, False),
        ("A 2\\times speed-up [1].", False, True, False),
        ("With $k$ experts [1].", False, True, False),
        ("Range 10x201320 [1].", False, False, False),
        ("Pages 10x2013 20 [1].", False, True, False),
        ("Title: When is Tree Search Useful [1].", False, False, True),
    ],
)
def test_answer_form_checks(text: str, mid: bool, markup: bool, label: bool) -> None:
    assert m.ends_mid_sentence(text) is mid
    assert m.has_markup(text) is markup
    assert m.has_passage_label(text) is label


def _q(kind: str, gold: set[str], needles: list[str], expect: str = "answer") -> Question:
    return Question(id="q", kind=kind, split="dev", question="?", gold=gold, must_contain=needles, expect=expect)


@pytest.mark.parametrize(
    ("question", "answer", "cited", "draft", "draft_cited", "abstained", "correct", "discarded"),
    [
        # right answer, gold cited
        (_q("quantity", {"g"}, ["67.6"]), "It is 67.6 [1].", ["g"], "It is 67.6 [1].", ["g"], False, True, False),
        # right number, wrong paper cited: not correct
        (_q("quantity", {"g"}, ["67.6"]), "It is 67.6 [1].", ["x"], "It is 67.6 [1].", ["x"], False, False, False),
        # right draft, refusal shown: discarded
        (_q("single", {"g"}, ["PARSeq"]), REFUSAL, [], "PARSeq [1].", ["g"], True, False, True),
        # right draft, number lost in the final answer: discarded
        (_q("quantity", {"g"}, ["585"]), "Paloma uses domains [1].", ["g"], "It uses 585 domains [1].", ["g"],
         False, False, True),
        # a needle inside a longer number is not found
        (_q("quantity", {"g"}, ["9"]), "In 2019 [1].", ["g"], "In 2019 [1].", ["g"], False, False, False),
        # list: judged by the complete gold set, not needles
        (_q("list", {"a", "b"}, ["Alpha"]), "[1] A\n[2] B", ["a", "b"], "", [], False, True, False),
        (_q("list", {"a", "b", "c"}, ["Alpha"]), "[1] A", ["a"], "", [], False, False, False),
        # unanswerable: right when refused
        (_q("unanswerable", set(), [], "abstain"), REFUSAL, [], "", [], True, True, False),
        (_q("unanswerable", set(), [], "abstain"), "It is 5 [1].", ["x"], "It is 5 [1].", ["x"], False, False, False),
    ],
)
def test_score_row(question: Question, answer: str, cited: list[str], draft: str, draft_cited: list[str],
                   abstained: bool, correct: bool, discarded: bool) -> None:
    row = score_row(question, answer, cited, draft, draft_cited, abstained, [], "You answer a researcher")
    assert row["correct"] is correct and row["discarded_correct"] is discarded


def test_summary_and_lower_is_better_thresholds() -> None:
    base = {"timings_ms": {"total": 1000.0}, "usage": {}, "replayed": False}
    rows = [
        {"id": "a", "kind": "single", **base, **score_row(_q("single", {"g"}, ["X1"]), "X1 [1].", ["g"], "X1 [1].",
                                                          ["g"], False, [True], "sys")},
        {"id": "b", "kind": "single", **base, **score_row(_q("single", {"g"}, ["X1"]), REFUSAL, [], "X1 [1].",
                                                          ["g"], True, [False], "sys")},
        {"id": "c", "kind": "unanswerable", **base, **score_row(_q("unanswerable", set(), [], "abstain"), REFUSAL,
                                                                [], "", [], True, [], "sys")},
    ]
    s = summarise(rows)
    assert s["answer_accuracy"] == 0.5 and s["false_abstention"] == 0.5 and s["discarded_correct"] == 0.5
    assert s["discarded_ids"] == ["b"] and s["faithfulness_draft"] == 0.5 and s["gold_recall"] == 0.5
    assert s["abstention_on_unanswerable"] == 1.0 and s["by_kind"]["single"]["correct"] == 0.5
    assert failing(s, {"answer_accuracy": 0.5, "false_abstention": 0.5, "prompt_leaks": 0}) == []
    missed = failing(s, {"answer_accuracy": 0.6, "false_abstention": 0.4, "discarded_correct": 0.6})
    assert len(missed) == 2 and missed[0].startswith("answer_accuracy") and missed[1].startswith("false_abstention")
    assert failing({"gold_recall_multi": None}, {"gold_recall_multi": 0.5})  # nothing measured fails too


def test_fail_under_rules_are_parsed_or_refused() -> None:
    assert parse_bounds(["answer_accuracy=0.8", "prompt_leaks=0"]) == {"answer_accuracy": 0.8, "prompt_leaks": 0.0}
    with pytest.raises(ValueError, match="METRIC=NUMBER"):
        parse_bounds(["answer_accuracy"])
    with pytest.raises(ValueError, match="METRIC=NUMBER"):
        parse_bounds(["answer_accuracy=high"])


def test_question_set_is_big_stratified_and_split() -> None:
    questions = load_questions()
    assert len(questions) >= 200 and len({q.id for q in questions}) == len(questions)
    for kind in KINDS:  # every kind is in both splits
        assert {q.split for q in questions if q.kind == kind} == {"dev", "test"}, kind
    assert all(q.must_contain for q in questions if not q.expects_abstention)
    assert all(q.gold for q in questions if not q.expects_abstention)
    assert all(not q.gold and not q.must_contain for q in questions if q.expects_abstention)
    assert {q.raw.get("lang") for q in questions if q.kind == "multilingual"} >= {"es", "fr", "de", "zh"}
    picked = select(questions, "dev", None, 2)
    assert {q.kind for q in picked} == set(KINDS) and all(q.split == "dev" for q in picked)


def test_gate_sample_is_seeded_stratified_and_dev_only() -> None:
    gate = load_gate()
    dev = select(load_questions(), gate["sample"]["split"])
    one = stratified_sample(dev, gate["sample"]["size"], gate["sample"]["seed"])
    again = stratified_sample(dev, gate["sample"]["size"], gate["sample"]["seed"])
    assert [q.id for q in one] == [q.id for q in again] and gate["sample"]["split"] == "dev"
    assert {q.kind for q in one} == set(KINDS) and abs(len(one) - gate["sample"]["size"]) <= len(KINDS)
    for name in gate["thresholds"]:  # every threshold sits beside the value it was set from
        assert name in gate["measured"], name


def test_report_escapes_everything() -> None:
    row = {"id": "x1", "kind": "single", "question": "<script>alert(1)</script>", "expect": "answer",
           "answer": "<img src=x onerror=alert(1)>", "draft": "<b>draft</b>", "system": "ours", "citations": [],
           "abstained": False, "leaked": False, "correct": False, "discarded_correct": True,
           "gold_precision": None, "gold_recall": None, "timings_ms": {"total": 5.0}}
    summary = summarise([{**row, **score_row(_q("single", {"g"}, ["X"]), "<img src=x onerror=alert(1)>", [],
                                              "<b>draft</b> X", ["g"], False, [], "p"), "usage": {}}])
    results = {
        "stamp": {"time": "t", "commit": "c", "index_fingerprint": "f", "model": "m", "questions": 1,
                  "machine": "x", "splits": ["dev"]},
        "answers": {"ours": {"summary": summary, "rows": [row]}},
        "retrieval": {},
        "checker": {},
    }
    page = render_html(results)
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;draft&lt;/b&gt;" in page  # the discarded case is listed, escaped
