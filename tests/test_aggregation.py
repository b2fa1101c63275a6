import numpy as np
import pytest
from scipy.special import expit

from sklearn_llm_multilabel.aggregation import (
    EPS,
    aggregate_first,
    aggregate_hard,
    aggregate_max,
    aggregate_mean,
    pack_steps,
    step_distributions,
)

# two texts, labels (a, b) + none; text 0 has two steps, text 1 one step
P0 = np.array([[0.5, 0.1, 0.4], [0.2, 0.7, 0.1]])
P1 = np.array([[0.1, 0.1, 0.8]])
SCORES, MASK = pack_steps([np.log(P0) + 3.0, np.log(P1) - 1.0])  # logits up to a constant


def test_step_distributions_are_softmax():
    np.testing.assert_allclose(step_distributions(np.log(P0) + 7.0), P0)


def test_first_is_compare_to_none():
    expected = np.array([[0.5 / (0.5 + 0.4), 0.1 / (0.1 + 0.4)], [0.1 / 0.9, 0.1 / 0.9]])
    np.testing.assert_allclose(aggregate_first(SCORES, MASK), expected)
    # σ(s(l) − s(none)) form
    np.testing.assert_allclose(
        aggregate_first(SCORES, MASK)[0], expit(SCORES[0, 0, :2] - SCORES[0, 0, 2])
    )


def test_max_over_generations():
    expected = np.array([[0.5, 0.7], [0.1, 0.1]])
    np.testing.assert_allclose(aggregate_max(SCORES, MASK), expected)


def test_mean_over_steps_ignores_padding():
    expected = np.array([[0.35, 0.4], [0.1, 0.1]])
    np.testing.assert_allclose(aggregate_mean(SCORES, MASK), expected)


def test_floor_at_eps():
    scores, mask = pack_steps([np.array([[-1e3, 0.0, 0.0]])])
    assert aggregate_max(scores, mask)[0, 0] == EPS
    assert aggregate_mean(scores, mask)[0, 0] == EPS


def test_hard():
    out = aggregate_hard(np.array([[True, False]]))
    np.testing.assert_array_equal(out, [[1 - 1e-8, 1e-8]])


@pytest.mark.parametrize("func", [aggregate_first, aggregate_max, aggregate_mean])
def test_permuting_labels_permutes_columns(func):
    perm = np.array([1, 0])
    permuted = SCORES[..., np.r_[perm, 2]]
    np.testing.assert_allclose(func(permuted, MASK), func(SCORES, MASK)[:, perm])


def test_shape_errors():
    with pytest.raises(ValueError, match="scores must have shape"):
        aggregate_max(np.zeros((2, 3)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        aggregate_max(SCORES, MASK[:, :1])
    with pytest.raises(ValueError, match="at least one step"):
        pack_steps([np.zeros((0, 3))])
    with pytest.raises(ValueError, match="same number of label columns"):
        pack_steps([np.zeros((1, 3)), np.zeros((1, 4))])


def test_one_table_drives_the_parameter_the_cli_and_the_public_module():
    from sklearn_llm_multilabel import LLMMultiLabelClassifier, aggregation
    from sklearn_llm_multilabel.cli import STRATEGIES

    names = tuple(aggregation.AGGREGATION_TABLE)
    assert names == ("first", "max", "mean", "hard", "unary", "binary") == STRATEGIES
    options = LLMMultiLabelClassifier._parameter_constraints["aggregation"][0].options
    assert set(options) == set(names)
    for entry in aggregation.AGGREGATION_TABLE.values():
        assert entry.function.__name__ in aggregation.__all__
        assert getattr(aggregation, entry.function.__name__) is entry.function
    assert [n for n, e in aggregation.AGGREGATION_TABLE.items() if not e.in_paper] == ["mean"]
