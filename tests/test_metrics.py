import numpy as np
import pytest

from sklearn_llm_multilabel.metrics import distribution_l1, distribution_nll, example_f1


def test_nll_hand_computed():
    H = np.array([[1.0, 0.0], [0.5, 1 / 3]])
    P = np.array([[0.8, 0.1], [0.5, 0.5]])
    row0 = -(np.log(0.8) + np.log(0.9))
    row1 = -(0.5 * np.log(0.5) + 0.5 * np.log(0.5)) - (np.log(0.5))
    assert distribution_nll(H, P) == pytest.approx((row0 + row1) / 2)


def test_l1_hand_computed():
    H = np.array([[1.0, 0.0], [0.5, 1 / 3]])
    P = np.array([[0.8, 0.1], [0.5, 0.5]])
    assert distribution_l1(H, P) == pytest.approx(((0.2 + 0.1) + (0 + 1 / 6)) / 2)


def test_nll_over_l1_is_minus_log_eps_for_hard_predictions():
    rng = np.random.default_rng(0)
    H = rng.integers(0, 4, size=(50, 6)) / 3
    P = np.where(rng.random((50, 6)) < 0.3, 1 - 1e-8, 1e-8)
    ratio = distribution_nll(H, P) / distribution_l1(H, P)
    assert ratio == pytest.approx(-np.log(1e-8), rel=1e-6)


def test_example_f1():
    gold = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    proba = np.array([[0.9, 0.2, 0.1], [0.1, 0.0, 0.3], [0.5, 0.2, 0.0]])
    # 2*1/(1+2), empty-vs-empty = 1, 0/(1+1)
    assert example_f1(gold, proba) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert example_f1(gold, proba, empty_score=0.0) == pytest.approx((2 / 3) / 3)
    assert example_f1(gold, proba, threshold=0.05) == pytest.approx(
        (2 * 2 / (2 + 3) + 0 + 2 / 3) / 3
    )


def test_proportions_binarised_at_half_for_f1():
    assert example_f1([[2 / 3, 1 / 3]], [[0.9, 0.1]]) == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        distribution_nll([[0.5, 0.5]], [[0.5]])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        distribution_l1([[1.5, 0.0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="2-d"):
        example_f1([0.5], [0.5])
