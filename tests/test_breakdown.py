"""Unary and binary breakdowns: prompts, Bradley–Terry, engine equivalence, cache."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_llm_multilabel import (
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
    load_model,
)
from sklearn_llm_multilabel._aggregation import aggregate_binary, aggregate_unary, fit_bradley_terry
from sklearn_llm_multilabel._breakdown import (
    build_binary_prompt,
    build_unary_prompt,
    candidate_pairs,
    select_breakdown_demonstrations,
)
from sklearn_llm_multilabel.backends._breakdown import BreakdownScorer
from sklearn_llm_multilabel.backends._labels import build_answer_tokens
from sklearn_llm_multilabel.exceptions import TokenizerError

from .conftest import LABEL_LISTS, LABELS, TEXTS

GOLD = np.array([[lab in row for lab in LABELS] for row in LABEL_LISTS])


def test_unary_prompt_layout():
    parts = build_unary_prompt(LABELS, ["Rain.", "Vote."], [(0, 0, 2, True), (1, 2, 1, False)])
    assert parts.prefix.endswith(
        "\n\nQuestion: Rain.\nLabel: weather\nIs the label reasonable: reasonable\n"
        "Question: Vote.\nLabel: sports\nIs the label reasonable: unreasonable\n")
    assert parts.middle("Hi") == "Question: Hi\n"
    assert parts.suffixes == tuple(f"Label: {lab}\nIs the label reasonable:" for lab in LABELS)


def test_binary_prompt_layout_includes_none():
    parts = build_binary_prompt(LABELS, ["Snow."], [(0, 3, 1, False)])
    assert "Question: Snow.\na. sports\nb. none\nCorrect Label: b\n" in parts.prefix
    assert parts.pairs == tuple(candidate_pairs(4)) and len(parts.suffixes) == 6
    assert parts.suffixes[2] == "a. weather\nb. none\nCorrect Label:"


def test_breakdown_demonstrations():
    demos = select_breakdown_demonstrations(GOLD, 6, random_state=0)
    assert demos == select_breakdown_demonstrations(GOLD, 6, random_state=0)
    assert len({row for row, *_ in demos}) == 6
    assert sum(flag for *_, flag in demos) == 3
    for row, pos, neg, *_ in demos:
        gold = set(np.flatnonzero(GOLD[row])) or {3}
        assert pos in gold and neg not in gold


def test_unary_formula():
    scores = np.log([[[3.0, 1.0], [1.0, 4.0]]])
    np.testing.assert_allclose(aggregate_unary(scores), [[0.75, 0.2]])


def test_bradley_terry_recovers_consistent_preferences():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, size=(5, 4))
    pairs = candidate_pairs(4)
    p = np.array([[expit(t[i] - t[j]) for i, j in pairs] for t in true])
    s = fit_bradley_terry(p, pairs, 4, l2=0.0, max_iter=5000)
    np.testing.assert_allclose(s - s.mean(axis=1, keepdims=True),
                               true - true.mean(axis=1, keepdims=True), atol=0.05)
    # ranks are preserved with the paper's L2 penalty too, and the fit is seeded
    s_l2 = fit_bradley_terry(p, pairs, 4)
    assert (np.argsort(s_l2, axis=1) == np.argsort(true, axis=1)).all()
    np.testing.assert_array_equal(s_l2, fit_bradley_terry(p, pairs, 4))


def test_binary_formula_is_sigmoid_of_score_minus_none():
    pairs = candidate_pairs(3)
    scores = np.zeros((1, 3, 2))
    scores[0, :, 0] = [2.0, 2.0, 0.0]  # label 0 beats 1 and none; 1 ties none
    proba = aggregate_binary(scores, pairs)
    s = fit_bradley_terry(expit(scores[..., 0] - scores[..., 1]), pairs, 3)
    np.testing.assert_allclose(proba, expit(s[:, :2] - s[:, 2:]))
    assert proba[0, 0] > 0.5 and abs(proba[0, 1] - 0.5) < 0.05


@pytest.mark.parametrize("kind", ["unary", "binary"])
@pytest.mark.parametrize("spec_fixture", ["tiny_llama", "tiny_gpt2"])
def test_shared_text_cache_equals_full_prompts(kind, spec_fixture, request):
    loaded = load_model(request.getfixturevalue(spec_fixture), device="cpu")
    build = build_unary_prompt if kind == "unary" else build_binary_prompt
    parts = build(LABELS, TEXTS, select_breakdown_demonstrations(GOLD, 4, random_state=0))
    scorer = BreakdownScorer(loaded, parts, max_text_tokens=64)
    queries = scorer.prepare_queries(TEXTS)
    reference = scorer.score_queries(queries, use_prefix_cache=False)
    for batch_size in (1, 3, 8):
        fast = scorer.score_queries(queries, batch_size=batch_size)
        for a, b in zip(fast, reference, strict=True):
            assert a.answer_scores.shape == (len(parts.suffixes), 2)
            np.testing.assert_allclose(a.answer_scores, b.answer_scores, atol=1e-5, rtol=0)


def test_each_text_is_encoded_once_for_all_its_queries(tiny_llama):
    loaded = load_model(tiny_llama, device="cpu")
    parts = build_binary_prompt(LABELS, TEXTS, select_breakdown_demonstrations(GOLD, 4, 0))
    scorer = BreakdownScorer(loaded, parts, max_text_tokens=64)
    scorer.score_queries(scorer.prepare_queries(TEXTS[:4]), batch_size=2)
    # 1 prefix + 1 forward per batch of 2 texts, each row holding a text and all its pairs
    assert get_scoring_stats()["forward_calls"] == 1 + 2
    # the pair suffixes "a. <i>\nb. <j>..." share their leading tokens in the tree
    assert len(scorer._tree.tokens) < sum(len(s) for s in scorer.suffix_ids)


def test_answers_that_cannot_be_told_apart(tiny_tokenizer):
    with pytest.raises(TokenizerError, match="cannot score the two answers apart"):
        build_answer_tokens(tiny_tokenizer, ("rain", "rain"), "Answer: ")


@pytest.mark.filterwarnings("ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning")
def test_grid_search_over_all_aggregations_scores_each_text_once_per_prompt(tiny_llama, tmp_path):
    texts = TEXTS + [t + " again" for t in TEXTS] + [t + " today" for t in TEXTS]
    y = LABEL_LISTS * 3
    clf = LLMMultiLabelClassifier(model=tiny_llama, labels=LABELS, n_shots=2, max_new_tokens=5,
                                  show_progress=False, cache_dir=tmp_path)
    grid = GridSearchCV(clf, {"aggregation": ["first", "max", "mean", "hard", "unary", "binary"],
                              "threshold": [0.3, 0.6]},
                        cv=KFold(3, shuffle=True, random_state=0))
    grid.fit(texts, y)
    # generation, unary and binary each score every (held-out) text once
    assert get_scoring_stats()["texts_scored"] == 3 * len(texts)
    probas = {}
    for aggregation in ("unary", "binary"):
        fitted = clf.set_params(aggregation=aggregation).fit(texts, y)
        probas[aggregation] = fitted.predict_proba(texts)
        assert probas[aggregation].shape == (len(texts), 3)
        assert ((probas[aggregation] > 0) & (probas[aggregation] < 1)).all()
    before = get_scoring_stats()["texts_scored"]
    clear_memory_cache()  # a new process: everything comes back from disk
    for aggregation, expected in probas.items():
        np.testing.assert_array_equal(
            clf.set_params(aggregation=aggregation).fit(texts, y).predict_proba(texts), expected)
    assert get_scoring_stats()["texts_scored"] == before
