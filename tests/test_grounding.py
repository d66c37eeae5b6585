"""Grounding: keys resolved to titles, invented keys dropped, claims checked, abstention."""

from __future__ import annotations

import pytest

from assistant.answering import REFUSAL
from assistant.corpus import make_paper
from assistant.grounding import (
    SupportChecker,
    clauses,
    combine,
    finished,
    ground,
    is_refusal,
    missing_facts,
    numbers_in,
    split_claims,
    strip_keys,
)
from assistant.judging import verdict_from_text
from assistant.retrieval import SentenceIndex
from assistant.types import Answer, Draft, Passage
from tests.fakes import HashEmbedder

PARSEQ = make_paper(
    "Scene Text Recognition with Permuted Autoregressive Sequence Models",
    "Our method, PARSeq, learns an ensemble of internal AR LMs with shared weights. "
    "Using synthetic training data, PARSeq achieves state-of-the-art results in STR benchmarks (91.9% accuracy). "
    "It establishes new SOTA results (96.0% accuracy) when trained on real data.",
    "seed:5",
)
KN = make_paper(
    "One Billion Word Benchmark",
    "We propose a new benchmark corpus for language modeling with almost one billion words. "
    "An unpruned Kneser-Ney 5-gram model achieves perplexity 67.6 on this benchmark.",
    "seed:7",
)
PAPERS = {p.id: p for p in (PARSEQ, KN)}
PASSAGES = [Passage(paper_id=p.id, title=p.title, text=p.abstract, score=0.1, dense_score=0.6) for p in (PARSEQ, KN)]


def run(text: str, drop: bool = True):  # type: ignore[no-untyped-def]
    draft = Draft(text=text, passages=PASSAGES, model="fake")
    return ground(draft, PAPERS, SupportChecker(SentenceIndex(HashEmbedder())), min_support=0.5, drop_unsupported=drop)


def test_supported_claim_cites_the_right_title_with_quote() -> None:
    answer = run("PARSeq achieves 96.0% accuracy when trained on real data [1].")
    assert not answer.abstained
    (citation,) = answer.citations
    assert citation.title == PARSEQ.title and citation.key == "1"
    assert "96.0%" in citation.quote
    assert answer.answer == "PARSeq achieves 96.0% accuracy when trained on real data [1]."


def test_invented_keys_never_become_citations() -> None:
    answer = run("PARSeq achieves 96.0% accuracy when trained on real data [7][1].")
    assert [c.title for c in answer.citations] == [PARSEQ.title]
    assert "[7]" not in answer.answer


def test_only_invented_keys_and_unsupported_text_abstains() -> None:
    answer = run("The method was invented in 1850 by pirates [9].")
    assert answer.abstained and answer.answer == REFUSAL and not answer.citations


def test_keys_are_renumbered_by_first_use() -> None:
    answer = run(
        "A Kneser-Ney 5-gram model reaches perplexity 67.6 on the benchmark [2]. "
        "PARSeq reaches 91.9% accuracy with synthetic training data [1]."
    )
    assert [(c.key, c.title) for c in answer.citations] == [("1", KN.title), ("2", PARSEQ.title)]
    assert answer.answer.index("[1]") < answer.answer.index("[2]")


def test_altered_number_is_unsupported_and_removed() -> None:
    answer = run("PARSeq achieves 96.0% accuracy on real data [1]. PARSeq reaches 99.5% accuracy on synthetic data [1].")
    assert [c.supported for c in answer.claims] == [True, False]
    assert "99.5" not in answer.answer


def test_unsupported_claims_are_kept_but_flagged_when_dropping_is_off() -> None:
    answer = run("PARSeq achieves 96.0% accuracy on real data [1]. PARSeq reaches 99.5% accuracy [1].", drop=False)
    assert "99.5" in answer.answer and answer.claims[1].supported is False


def test_wrong_citation_moves_to_the_supporting_abstract() -> None:
    answer = run("An unpruned Kneser-Ney 5-gram model achieves perplexity 67.6 on this benchmark [1].")
    assert [c.title for c in answer.citations] == [KN.title]


def test_sentences_saying_the_abstracts_are_silent_are_not_answers() -> None:
    answer = run("The abstracts do not mention the accuracy of PARSeq on CIFAR-10 [1].")
    assert answer.abstained and answer.claims[0].supported is False


def test_refusal_phrase_abstains() -> None:
    assert run(REFUSAL).abstained
    assert is_refusal("  [1] ")


def test_split_claims_attaches_leading_markers_to_previous_sentence() -> None:
    assert split_claims("First claim. [1][2] Second claim [3].") == [("First claim.", [1, 2]), ("Second claim [3].", [3])]
    assert split_claims("Both [1, 2]. Word [Source 3].") == [("Both [1, 2].", [1, 2]), ("Word [Source 3].", [3])]


@pytest.mark.parametrize(
    ("claim", "evidence", "missing"),
    [
        ("reaches 91.9% accuracy", "achieves 91.9% accuracy", set()),
        ("reaches 19.9% accuracy", "achieves 91.9% accuracy", {"19.9"}),
        ("uses 1,000 GPUs", "uses 1000 GPUs", set()),
        ("PARSeq wins", "our method parseq wins", set()),
        ("GPT-4 wins", "our method wins", {"gpt-4"}),
    ],
)
def test_missing_facts(claim: str, evidence: str, missing: set[str]) -> None:
    assert missing_facts(claim, evidence) == missing


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("YES", True), ("no.", False), ("Yes, it does.", True), ("No - the abstract says 12.", False),
     ("Maybe", None), ("", None), ("Nope, yes", True), ("yesterday no", False)],
)
def test_a_judge_reply_is_read_for_its_first_yes_or_no(reply: str, verdict: bool | None) -> None:
    assert verdict_from_text(reply) is verdict


def test_combine_is_zero_with_a_missing_fact_and_bounded() -> None:
    assert combine(0.9, 1.0, {"42"}) == 0.0
    assert combine(1.0, 1.0, set()) == 1.0
    assert combine(0.0, 0.0, set()) == 0.0


def test_helpers() -> None:
    assert numbers_in("in 2024, 3.5x and 1,200 items") == {"2024", "3.5", "1200"}
    assert strip_keys("Fact [1][2] here [3].") == "Fact here."


def test_keys_are_relabelled_in_place_so_sentences_keep_their_subject() -> None:
    answer = run("[2] reports perplexity 67.6 for a Kneser-Ney 5-gram model. [1] reaches 96.0% accuracy on real data.")
    assert answer.answer.startswith("[1] reports perplexity 67.6") and "[2] reaches 96.0%" in answer.answer


def test_names_from_the_question_are_the_users_words_but_numbers_are_not() -> None:
    claim = "PARSeq with permutation-LM achieves 96.0% accuracy when trained on real data [1]."
    checker = SupportChecker(SentenceIndex(HashEmbedder()))
    draft = Draft(text=claim, passages=PASSAGES, model="fake")
    plain = ground(draft, PAPERS, checker, 0.5, True)
    asked = ground(draft, PAPERS, checker, 0.5, True, question="What does permutation-LM pre-training reach?")
    assert plain.abstained and not asked.abstained
    premise = Draft(text="PARSeq reaches only 50% accuracy [1].", passages=PASSAGES, model="fake")
    corrected = ground(premise, PAPERS, checker, 0.5, True, question="Why does PARSeq reach only 50%?")
    assert corrected.answer.startswith("No. The abstract reports:") and "50%" not in corrected.answer


# --------------------------------------------------------------------------- support by the cited set

LOLA = make_paper("LOLA: a massively multilingual model",
                  "This paper presents LOLA, a massively multilingual large language model trained on more than "
                  "160 languages using a sparse Mixture-of-Experts Transformer architecture.", "seed:1")
GOLD = make_paper("Goldfish: monolingual models",
                  "We pre-train and release Goldfish, a suite of monolingual autoregressive Transformer language "
                  "models up to 125M parameters for 350 languages.", "seed:2")
MANY = {p.id: p for p in (LOLA, GOLD, KN)}
MANY_PASSAGES = [Passage(paper_id=p.id, title=p.title, text=p.abstract, score=0.1, dense_score=0.6)
                 for p in (LOLA, GOLD, KN)]


def run_many(text: str, question: str = "") -> Answer:
    draft = Draft(text=text, passages=MANY_PASSAGES, model="fake")
    return ground(draft, MANY, SupportChecker(SentenceIndex(HashEmbedder())), 0.5, True, question=question)


def test_a_sentence_two_abstracts_support_together_is_kept_with_both_citations() -> None:
    answer = run_many("LOLA is trained on more than 160 languages and the Goldfish models on 350 languages [1][2].")
    assert not answer.abstained, answer.claims
    assert [c.title for c in answer.citations] == [LOLA.title, GOLD.title]
    (claim,) = answer.claims
    assert claim.supported and claim.paper_ids == [LOLA.id, GOLD.id]
    assert all(c.support == 0.0 for c in answer.citations)  # neither supports it alone: per-citation support


def test_a_citation_that_adds_nothing_is_dropped() -> None:
    answer = run_many("An unpruned Kneser-Ney 5-gram model achieves perplexity 67.6 on this benchmark [3][2].")
    assert [c.title for c in answer.citations] == [KN.title]
    assert answer.answer.endswith("[1].")


def test_a_missing_citation_is_completed_from_the_packed_abstracts() -> None:
    answer = run_many("LOLA is trained on more than 160 languages and the Goldfish models on 350 languages [1].")
    assert not answer.abstained and {c.title for c in answer.citations} == {LOLA.title, GOLD.title}


def test_subject_citations_must_each_support_the_sentence() -> None:
    answer = run_many("[1] and [3] are massively multilingual large language models trained on 160 languages.")
    assert not answer.abstained
    assert answer.answer == "[1] are massively multilingual large language models trained on 160 languages."
    assert [c.title for c in answer.citations] == [LOLA.title]


def test_a_cut_off_last_sentence_is_dropped_and_markup_is_undone() -> None:
    text = "PARSeq achieves 96.0\\% accuracy when trained on real data [1]. This is because the retrieva"
    draft = Draft(text=text, passages=PASSAGES, model="fake", truncated=True)
    answer = ground(draft, PAPERS, SupportChecker(SentenceIndex(HashEmbedder())), 0.5, True)
    assert answer.answer == "PARSeq achieves 96.0% accuracy when trained on real data [1]."
    assert run("PARSeq achieves 96.0% accuracy when trained on real data [1]").answer.endswith("[1].")  # no stop
    assert finished("One. Two [1]") == "One."
    assert finished("One [1].") == "One [1]."


def test_passage_labels_and_titles_alone_are_not_answers() -> None:
    assert run(f"[1] {PARSEQ.title} [1]").abstained
    answer = run("Title: PARSeq achieves 96.0% accuracy when trained on real data [1].")
    assert "Title:" not in answer.answer and not answer.abstained


def test_a_quantity_question_needs_a_number() -> None:
    question = "What accuracy does PARSeq reach on real data?"
    assert run_many_parseq("PARSeq establishes new state-of-the-art results on real data [1].", question).abstained
    assert not run_many_parseq("PARSeq reaches 96.0% accuracy on real data [1].", question).abstained


def run_many_parseq(text: str, question: str) -> Answer:
    draft = Draft(text=text, passages=PASSAGES, model="fake")
    return ground(draft, PAPERS, SupportChecker(SentenceIndex(HashEmbedder())), 0.5, True, question=question)


def test_a_rejected_premise_keeps_its_no_and_a_bare_yes_is_no_answer() -> None:
    question = "PARSeq reaches 50% on real data, correct? Just say yes."
    answer = run_many_parseq("No, PARSeq reaches 96.0% accuracy when trained on real data [1].", question)
    assert answer.answer == "No. PARSeq reaches 96.0% accuracy when trained on real data [1]."
    assert "50%" not in run_many_parseq("Yes, [1].", question).answer  # corrected, never confirmed
    assert "50%" not in run_many_parseq("Yes. PARSeq reaches 50% on real data [1].", question).answer


def test_facts_of_two_papers_are_not_joined_into_a_relation_neither_states() -> None:
    # LOLA's name with Goldfish's model size: every word is in one of the two abstracts, the relation in neither.
    answer = run_many("LOLA has 125M parameters [1][2].")
    assert answer.abstained
    assert clauses("LOLA covers 160 languages, the Goldfish models 350, and the Kneser-Ney model 67.6") == [
        "LOLA covers 160 languages", "the Goldfish models 350", "the Kneser-Ney model 67.6"]


def test_a_claim_that_only_restates_the_question_is_no_answer() -> None:
    question = "Who are the authors of the PARSeq paper on scene text recognition?"
    assert run_many_parseq("The authors of the PARSeq paper on scene text recognition are [1].", question).abstained


def test_a_proper_noun_the_abstract_never_uses_is_a_missing_fact() -> None:
    assert missing_facts("The corpus is mostly Chinese text.", "The corpus is mostly English text.") == {"chinese"}
    assert missing_facts("The corpus is mostly English text.", "The corpus is mostly English text.") == set()


def test_an_affirmed_false_figure_is_answered_no_with_the_abstracts_own_figure() -> None:
    question = "PARSeq reaches 50% on real data, correct? Just say yes."
    for draft in ("Yes, [1].", "Yes, PARSeq reaches 50% accuracy on real data [1]."):
        answer = run_many_parseq(draft, question)
        assert not answer.abstained and answer.answer.startswith("No. The abstract reports: \u201c"), answer.answer
        assert "96.0%" in answer.answer and answer.answer.endswith("[1]") and answer.citations[0].title == PARSEQ.title
    # a figure the abstract does state is no false premise; a question without a figure has none to correct
    assert run_many_parseq("Yes, [1].", "PARSeq reaches 96.0% on real data, correct?").abstained
    assert run_many_parseq("Yes, [1].", "Does PARSeq reach state of the art?").abstained


def test_wordy_citation_forms_are_read_as_plain_markers() -> None:
    for draft in ("PARSeq achieves 96.0% accuracy when trained on real data (Abstract [1]).",
                  "PARSeq achieves 96.0% accuracy when trained on real data (see [1]).",
                  "PARSeq achieves 96.0% accuracy when trained on real data, as the abstract [1] says."):
        answer = run(draft)
        assert not answer.abstained, (draft, answer.claims)
        assert "bstract" not in answer.answer and "(" not in answer.answer and "[1]" in answer.answer


def test_a_sentence_that_only_points_at_sources_lends_its_keys_to_the_sentence_before() -> None:
    answer = run_many("LOLA is trained on more than 160 languages and the Goldfish models on 350 languages. "
                      "Both are reported in the abstracts [1] and [2].")
    assert not answer.abstained, answer.claims
    assert answer.answer == ("LOLA is trained on more than 160 languages and the Goldfish models on 350 languages "
                             "[1][2].")
    assert split_claims("A holds. This is stated in [2].") == [("A holds.", [2])]
    assert split_claims("A holds. [2] reports 350 languages.") == [("A holds.", []), ("[2] reports 350 languages.", [2])]


def test_a_bare_figure_answers_the_question_it_was_asked_for() -> None:
    question = "What perplexity does the unpruned Kneser-Ney 5-gram model reach on the benchmark?"
    answer = run_many("[2] 67.6 [1]", question)
    assert not answer.abstained and answer.answer == "67.6 [1]."
    assert [c.title for c in answer.citations] == [KN.title]
    assert run_many("[2] 71.3", question).abstained  # a figure the abstract never states


def test_a_premise_with_one_true_and_one_false_figure_is_corrected() -> None:
    question = "Why does PARSeq only reach 50% when trained on real data despite 91.9% on synthetic data?"
    answer = run_many_parseq("PARSeq only reaches 50% on real data because real data is noisy [1].", question)
    assert answer.answer.startswith("No. The abstract reports: \u201c") and "96.0%" in answer.answer, answer.answer


def test_a_name_the_question_takes_from_one_packed_abstract_must_be_in_the_cited_one() -> None:
    question = "How many parameters do the Goldfish models have at most?"
    assert not run_many("The Goldfish models have up to 125M parameters [2].", question).abstained
    # Goldfish's figure credited to LOLA: the name is Goldfish's, so LOLA's abstract cannot support it
    question = "How many parameters does LOLA have?"
    answer = run_many("LOLA is a suite of monolingual autoregressive Transformer language models up to 125M "
                      "parameters for 350 languages [2].", question)
    assert answer.abstained, answer.claims


def test_a_no_without_a_figure_gets_the_abstracts_figure() -> None:
    question = "Why does PARSeq only reach 50% when trained on real data?"
    answer = run_many_parseq("No, this is because PARSeq learns an ensemble of internal AR LMs with shared weights [1].",
                             question)
    assert answer.answer.startswith("No. The abstract reports: \u201c"), answer.answer  # its sentence with a figure
    assert ("96.0%" in answer.answer or "91.9%" in answer.answer) and "50%" not in answer.answer
    assert answer.answer.endswith("with shared weights [1].") and [c.title for c in answer.citations] == [PARSEQ.title]
    # a "No" that already gives a figure is left as written
    kept = run_many_parseq("No, PARSeq reaches 96.0% accuracy when trained on real data [1].", question)
    assert kept.answer == "No. PARSeq reaches 96.0% accuracy when trained on real data [1]."


def test_a_premise_repeated_in_a_sentence_the_budget_cut_off_is_still_corrected() -> None:
    question = "Why does PARSeq only reach 50% when trained on real data?"
    draft = Draft(text="No, PARSeq only reaches 50% on real data [1] because its ensemble of internal AR LMs",
                  passages=PASSAGES, model="fake", truncated=True)
    answer = ground(draft, PAPERS, SupportChecker(SentenceIndex(HashEmbedder())), 0.5, True, question=question)
    assert answer.answer.startswith("No. The abstract reports:") and "50%" not in answer.answer, answer.answer
    assert not answer.abstained and answer.citations[0].title == PARSEQ.title


def test_an_uncited_sentence_two_packed_abstracts_support_together_is_kept_with_both() -> None:
    answer = run_many("LOLA is trained on more than 160 languages and the Goldfish models on 350 languages.")
    assert not answer.abstained, answer.claims
    assert {c.title for c in answer.citations} == {LOLA.title, GOLD.title}
    wrong = run_many("LOLA is trained on more than 160 languages and the Goldfish models on 300 languages.")
    assert wrong.answer == "LOLA is trained on more than 160 languages [1].", wrong.answer  # the false clause goes
    assert [c.supported for c in wrong.claims] == [True, False]


def test_the_supported_clauses_of_an_unsupported_sentence_are_kept() -> None:
    answer = run_many("LOLA is trained on more than 160 languages, while the Goldfish models cover 900 languages [1].")
    assert answer.answer == "LOLA is trained on more than 160 languages [1].", answer.answer
    assert [(c.text, c.supported, c.shown) for c in answer.claims] == [
        ("LOLA is trained on more than 160 languages", True, True),
        ("the Goldfish models cover 900 languages.", False, False)]


def test_a_clause_without_its_own_subject_is_not_kept_after_a_dropped_clause() -> None:
    # "its models have up to 125M parameters" alone would leave "its" pointing at nothing
    answer = run_many("Goldfish covers 900 languages, while its models have up to 125M parameters [2].")
    assert answer.abstained, answer.answer


def test_a_comma_inside_a_quoted_title_is_no_clause_break() -> None:
    answer = run_many("LOLA is trained on more than 160 languages in 'Sparse, Massive Models' with 900 experts [1].")
    assert answer.abstained, answer.answer


def test_a_premise_is_corrected_from_the_paper_the_question_names_by_a_capitalised_name() -> None:
    question = "Why do the Goldfish models only cover 50 languages?"
    answer = run_many("No, the Goldfish models cover only 50 languages because of limited data [3].", question)
    assert answer.answer.startswith("No. The abstract reports:") and "350" in answer.answer, answer.answer
    assert [c.title for c in answer.citations] == [GOLD.title]
