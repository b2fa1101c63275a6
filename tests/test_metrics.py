import numpy as np
import pytest

from sklearn_llm_multilabel.metrics import distribution_l1, distribution_nll, example_f1, label_f1


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


def test_brier_and_ece_hand_computed():
    from sklearn_llm_multilabel.metrics import brier_score, expected_calibration_error

    H = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1 / 3]])
    P = np.array([[0.8, 0.1], [0.5, 0.15], [0.1, 0.5]])
    np.testing.assert_allclose(
        brier_score(H, P, average=None),
        [(0.04 + 0 + 0.01) / 3, (0.01 + 0.0225 + (0.5 - 1 / 3) ** 2) / 3],
    )
    # 2 bins: label 0 -> bin0 {row2: p .1 h 0}, bin1 {rows 0,1: p .65 h .75}
    ece = expected_calibration_error(H, P, n_bins=2, average=None)
    label1 = 2 / 3 * abs(0.125 - 0.0) + 1 / 3 * abs(0.5 - 1 / 3)
    np.testing.assert_allclose(ece, [1 / 3 * 0.1 + 2 / 3 * 0.1, label1])


def test_label_f1_equals_sklearn():
    from sklearn.metrics import f1_score

    from sklearn_llm_multilabel.metrics import label_f1

    H = np.array([[1, 0, 1], [0, 2 / 3, 0], [1 / 3, 1, 0]])
    P = np.array([[0.9, 0.6, 0.2], [0.1, 0.7, 0.0], [0.6, 0.3, 0.1]])
    rng = np.random.default_rng(0)
    cases = [(H, P), (np.zeros((4, 3)), np.zeros((4, 3))),  # nothing on either side: 0
             (np.zeros((4, 3)), rng.uniform(size=(4, 3)))]
    cases += [(rng.uniform(size=(30, 5)) ** 3, rng.uniform(size=(30, 5)) ** 2) for _ in range(20)]
    for y_true, y_proba in cases:
        for average in ("micro", "macro"):
            for threshold in (0.3, 0.5):
                assert label_f1(y_true, y_proba, average=average, threshold=threshold) == \
                    pytest.approx(f1_score(y_true >= 0.5, y_proba >= threshold,
                                           average=average, zero_division=0.0))


def test_alignment_scorers_signs_and_one_response_per_method():
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.model_selection import cross_validate

    from sklearn_llm_multilabel.metrics import THRESHOLDED_METRICS, alignment_scorers

    class Fixed(ClassifierMixin, BaseEstimator):
        calls = {"predict_proba": 0, "predict": 0}

        def __init__(self, threshold=0.5):
            self.threshold = threshold

        def fit(self, X, y):
            self.classes_ = [np.array([0, 1])] * y.shape[1]
            return self

        def predict_proba(self, X):
            Fixed.calls["predict_proba"] += 1
            return np.asarray(X)[:, :2]

        def predict(self, X):
            Fixed.calls["predict"] += 1
            return (np.asarray(X)[:, :2] >= self.threshold).astype(int)

    rng = np.random.default_rng(0)
    H = rng.integers(0, 4, (30, 2)) / 3
    X = np.clip(H + rng.normal(0, 0.1, H.shape), 0.01, 0.99)
    scores = cross_validate(Fixed(), X, H, scoring=alignment_scorers(), cv=3)
    # one predict_proba (4 distribution metrics) and one predict (3 F1s) per fold
    assert Fixed.calls == {"predict_proba": 3, "predict": 3}
    assert THRESHOLDED_METRICS == {"example_f1", "micro_f1", "macro_f1"}
    assert (scores["test_nll"] < 0).all() and (scores["test_l1"] < 0).all()
    assert (scores["test_example_f1"] > 0).all()
    fold_nll = distribution_nll(H[:10], X[:10])
    assert scores["test_nll"][0] == pytest.approx(-fold_nll)
    # the F1 scorers score the estimator's own decisions: its threshold reaches them
    for threshold in (0.2, 0.8):
        est = Fixed(threshold=threshold).fit(X, H)
        scorers = alignment_scorers()
        assert scorers["example_f1"](est, X, H) == pytest.approx(
            example_f1(H, (X >= threshold).astype(float)))
        assert scorers["macro_f1"](est, X, H) == pytest.approx(
            label_f1(H, (X >= threshold).astype(float), average="macro"))


def test_alignment_report_with_prior():
    from sklearn_llm_multilabel.metrics import alignment_report

    H = np.array([[1.0, 0.0], [0.0, 1.0]])
    report = alignment_report(H, [[0.9, 0.1], [0.2, 0.7]], train_proportions=[[1, 0], [0, 0]])
    assert report["constant prior"]["l1"] == pytest.approx(((0.5 + 0) + (0.5 + 1)) / 2)
    assert report["model"]["example_f1"] == 1.0
    assert set(report["model"]) == {"nll", "l1", "example_f1", "brier", "ece", "micro_f1",
                                    "macro_f1", "manhattan"}
    with pytest.raises(ValueError, match="train_proportions"):
        alignment_report(H, H, train_proportions=[[1, 0, 0]])


def test_bootstrap_intervals_hold_the_value_and_pair_the_prior():
    """Percentile intervals from resampled texts; the (model − prior) interval is paired: the
    same resamples serve both rows, so a model better on every text has an interval below 0."""
    from sklearn_llm_multilabel.metrics import alignment_report, distribution_l1
    from sklearn_llm_multilabel.metrics._bootstrap import bootstrap_indices

    rng = np.random.default_rng(0)
    H = rng.uniform(size=(60, 3))
    P = np.clip(H + rng.normal(0, 0.05, size=H.shape), 0, 1)
    report = alignment_report(H, P, train_proportions=H, n_bootstrap=300, random_state=1)
    for name in ("model", "constant prior"):
        for metric in ("nll", "l1", "manhattan", "example_f1"):
            low, high = report[name][f"{metric}_ci"]
            assert low <= high
    low, high = report["model"]["l1_ci"]
    assert low < report["model"]["l1"] < high
    # by hand: the same draws give the same interval
    draws = [distribution_l1(H[rows], P[rows]) for rows in bootstrap_indices(60, 300, 1)]
    assert (low, high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))
    assert report["model"]["l1_vs_prior_ci"][1] < 0
    assert "l1_vs_prior_ci" not in report["constant prior"]
    # the same seed gives the same intervals; no bootstrap gives none
    again = alignment_report(H, P, train_proportions=H, n_bootstrap=300, random_state=1)
    assert again["model"]["nll_ci"] == report["model"]["nll_ci"]
    assert "nll_ci" not in alignment_report(H, P)["model"]


def test_lewidi_metrics_by_hand():
    from sklearn_llm_multilabel.metrics import (
        distribution_l1,
        perspectivist_error_rate,
        soft_label_manhattan,
    )

    H, P = np.array([[1.0, 0.5, 0.0]]), np.array([[0.5, 0.5, 0.25]])
    # |0.5| + 0 + |0.25| per label, doubled, over 3 labels
    assert soft_label_manhattan(H, P) == pytest.approx(2 * 0.75 / 3)
    assert soft_label_manhattan(H, P) == pytest.approx(2 * distribution_l1(H, P) / 3)
    truth = [[["a"], ["a", "b"], []], [["b"]]]
    # item 0: prediction {a} vs {a}: 0, vs {a,b}: 1/2, vs {}: 1/2 -> 1/3; item 1: {} vs {b}: 1/2
    assert perspectivist_error_rate(truth, [["a"], []], ["a", "b"]) == pytest.approx(
        (1 / 3 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="2 per-annotator predictions for 3 annotators"):
        perspectivist_error_rate(truth, [[["a"], ["b"]], []], ["a", "b"])
    with pytest.raises(ValueError, match=r"label\(s\) \['c'\]"):
        perspectivist_error_rate(truth, [["c"], []], ["a", "b"])


def test_report_marks_a_difference_from_the_prior_by_its_direction():
    from sklearn_llm_multilabel.report import prior_mark

    assert prior_mark({"nll_vs_prior_ci": (-0.3, -0.1)}, "nll") == " ▲"  # lower loss: better
    assert prior_mark({"nll_vs_prior_ci": (0.1, 0.3)}, "nll") == " ▼"
    assert prior_mark({"example_f1_vs_prior_ci": (0.1, 0.3)}, "example_f1") == " ▲"
    assert prior_mark({"example_f1_vs_prior_ci": (-0.3, -0.1)}, "example_f1") == " ▼"
    assert prior_mark({"nll_vs_prior_ci": (-0.1, 0.2)}, "nll") == ""
    assert prior_mark({}, "nll") == ""


# ------------------------------------------------ LeWiDi 2025, as the shared task computes them
def _official_task_a(targets, predictions):
    """The published multi-label average Manhattan distance: per item, per label, the distance
    of the two-outcome distributions (rounded to 5 decimals), the item's mean (rounded), the
    mean over items (rounded)."""
    items = []
    for target, prediction in zip(targets, predictions):
        distances = [round(sum(abs(p - t) for p, t in zip(pl, tl)), 5)
                     for tl, pl in zip(target, prediction)]
        items.append(round(sum(distances) / len(distances), 5))
    return round(sum(items) / len(items), 5)


def _official_task_b(targets, predictions):
    """The published multi-label error rate: per item, per label, the share of the item's
    annotators that the prediction misses (rounded to 5 decimals), averaged over labels, then
    over items. ``targets[i][label]`` is the label's 0/1 vector over the item's annotators."""
    items = []
    for target, prediction in zip(targets, predictions):
        items.append(np.mean([round(sum(abs(t - p) for t, p in zip(tv, pv)) / len(tv), 5)
                              for tv, pv in zip(target, prediction)]))
    return float(np.mean(items))


def test_the_lewidi_2025_task_a_distance_is_the_shared_tasks():
    from sklearn_llm_multilabel.metrics import soft_label_manhattan

    # by hand: item 1 labels (.5 vs .25) -> .5, (1 vs 1) -> 0, (0 vs .5) -> 1: mean .5;
    # item 2 (0 vs 0), (.25 vs .75) -> 1, (1 vs .5) -> 1: mean 2/3; overall 7/12
    H = np.array([[0.5, 1.0, 0.0], [0.0, 0.25, 1.0]])
    P = np.array([[0.25, 1.0, 0.5], [0.0, 0.75, 0.5]])
    assert soft_label_manhattan(H, P) == pytest.approx(7 / 12)
    as_pairs = [[[1 - h, h] for h in row] for row in H.tolist()]
    assert _official_task_a(as_pairs, [[[1 - p, p] for p in row] for row in P.tolist()]) == \
        round(7 / 12, 5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        H = rng.choice([0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1], size=(40, 3))
        P = rng.random((40, 3))
        official = _official_task_a([[[1 - h, h] for h in r] for r in H.tolist()],
                                    [[[1 - p, p] for p in r] for r in P.tolist()])
        assert abs(soft_label_manhattan(H, P) - official) <= 1e-5


def test_the_lewidi_2025_error_rate_is_the_shared_tasks():
    from sklearn_llm_multilabel.metrics import perspectivist_error_rate, perspectivist_error_rates

    names = ["contradiction", "entailment", "neutral"]
    # by hand: item 1, 2 annotators: 1 miss of 6 decisions; item 2, 3 annotators: 2 of 9
    truth = [[["neutral"], ["entailment", "neutral"]],
             [["contradiction"], [], ["contradiction", "neutral"]]]
    predicted = [["neutral"], [["contradiction"], ["neutral"], ["contradiction"]]]
    np.testing.assert_allclose(perspectivist_error_rates(truth, predicted, names), [1 / 6, 2 / 9])
    assert perspectivist_error_rate(truth, predicted, names) == pytest.approx(7 / 36)

    def vectors(sets):  # the shared task's layout: per label, a 0/1 vector over annotators
        return [[int(n in s) for s in sets] for n in names]

    rng = np.random.default_rng(1)
    for _ in range(50):
        truth, guesses = [], []
        for _ in range(30):
            k = int(rng.integers(1, 5))
            truth.append([[n for n in names if rng.random() < 0.4] for _ in range(k)])
            guesses.append([[n for n in names if rng.random() < 0.5] for _ in range(k)])
        official = _official_task_b([vectors(t) for t in truth], [vectors(g) for g in guesses])
        assert abs(perspectivist_error_rate(truth, guesses, names) - official) <= 1e-5


# ------------------------------------------------ noise-aware metrics
def test_excess_nll_is_the_nll_beyond_the_targets_own_entropy():
    from sklearn_llm_multilabel.metrics import distribution_nll, excess_nll

    H = np.array([[0.5, 1.0, 0.0], [0.25, 0.75, 1.0]])
    P = np.array([[0.4, 0.9, 0.2], [0.25, 0.5, 0.99]])
    entropy = -(H * np.log(np.where(H > 0, H, 1)) + (1 - H) * np.log(np.where(H < 1, 1 - H, 1)))
    assert excess_nll(H, P) == pytest.approx(distribution_nll(H, P) - entropy.sum(1).mean())
    # by hand, text 1 label 1: KL(1/2 || 0.4) = 0.5 ln(0.5/0.4) + 0.5 ln(0.5/0.6)
    kl = 0.5 * np.log(0.5 / 0.4) + 0.5 * np.log(0.5 / 0.6)
    assert excess_nll(H[:1, :1], P[:1, :1]) == pytest.approx(kl)
    assert excess_nll(H, H) == pytest.approx(0.0, abs=1e-6) and excess_nll(H, P) > 0


def test_the_debiased_squared_error_removes_the_annotators_sampling_noise():
    from sklearn_llm_multilabel.metrics import debiased_squared_error

    # by hand: (0.6 - 0.5)^2 - 0.25 / 3 and (0.2 - 0)^2 - 0
    assert debiased_squared_error([[0.5, 0.0]], [[0.6, 0.2]], [4]) == pytest.approx(
        ((0.01 - 0.25 / 3) + 0.04) / 2)
    # unbiased: n annotators drawn at rate pi, the mean over many items is (p - pi)^2
    rng = np.random.default_rng(0)
    pi, p, n = 0.3, 0.45, 3
    H = rng.binomial(n, pi, size=(200_000, 1)) / n
    estimate = debiased_squared_error(H, np.full_like(H, p), np.full(len(H), n))
    assert estimate == pytest.approx((p - pi) ** 2, abs=2e-3)
    naive = float(((p - H) ** 2).mean())
    assert abs(naive - (p - pi) ** 2) > 0.05  # what the debiasing removes
    with pytest.raises(ValueError, match=r"at least 2 for every text .*texts \[1\] have \[1.0\]"):
        debiased_squared_error([[0.5], [1.0]], [[0.5], [0.5]], [2, 1])
    with pytest.raises(ValueError, match="one count per text"):
        debiased_squared_error([[0.5]], [[0.5]], [2, 2])


def test_entropy_correlation_ranks_where_annotators_disagree():
    from sklearn_llm_multilabel.metrics import entropy_correlation

    H = np.array([[0.5, 0.5], [0.0, 1.0], [0.25, 0.0], [0.5, 0.0]])
    assert entropy_correlation(H, np.clip(H, 0.05, 0.95)) == pytest.approx(1.0)
    # the model unsure exactly where the annotators agree: the ranking reversed
    reversed_ = np.array([[0.99, 0.99], [0.5, 0.5], [0.3, 0.99], [0.2, 0.99]])
    assert entropy_correlation(H, reversed_) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="undefined"):
        entropy_correlation(H, np.full(H.shape, 0.3))
    with pytest.raises(ValueError, match="at least 3 texts"):
        entropy_correlation(H[:2], H[:2])
