import itertools

import numpy as np
import pytest
from sklearn.model_selection import KFold

from sklearn_llm_multilabel import DistributionCalibrator, LLMMultiLabelClassifier, get_scoring_stats
from sklearn_llm_multilabel.metrics import example_f1, label_f1
from sklearn_llm_multilabel.model_selection import (
    MultiLabelTunedThresholdCV,
    cross_val_predict_proba,
)

from .conftest import LABEL_LISTS, LABELS, TEXTS


def data(n=150, L=2, seed=0):
    rng = np.random.default_rng(seed)
    H = rng.integers(0, 4, (n, L)) / 3
    S = np.clip(H * 0.6 + rng.normal(0, 0.2, H.shape) + 0.1, 0.01, 0.99)
    return S, H


def brute_force(metric, Y, P, grid, L):
    return max(metric(Y, (P >= np.array(ts)).astype(float))
               for ts in itertools.product(grid, repeat=L))


@pytest.mark.parametrize("metric, func", [
    ("example_f1", example_f1),
    ("micro_f1", lambda y, p: label_f1(y, p, average="micro")),
    ("macro_f1", lambda y, p: label_f1(y, p, average="macro")),
])
def test_exhaustive_search_matches_brute_force(metric, func):
    S, H = data()
    grid = [0.1, 0.3, 0.5, 0.7, 0.9]
    cv = KFold(3, shuffle=True, random_state=0)
    tuner = MultiLabelTunedThresholdCV(DistributionCalibrator(), metric=metric,
                                       thresholds=grid, cv=cv).fit(S, H)
    expected = brute_force(func, H, tuner.cv_proba_, grid, 2)
    assert tuner.best_score_ == pytest.approx(expected)
    assert func(H, (tuner.cv_proba_ >= tuner.thresholds_).astype(float)) == pytest.approx(expected)
    # the out-of-fold probabilities are those of a manual cross-validation
    manual = np.zeros_like(H)
    for train, test in cv.split(S):
        manual[test] = DistributionCalibrator().fit(S[train], H[train]).predict_proba(S[test])
    np.testing.assert_allclose(tuner.cv_proba_, manual)


def test_coordinate_ascent_is_exact_for_separable_macro_f1():
    S, H = data(L=3, seed=1)
    grid = np.linspace(0.05, 0.95, 7)
    tuner = MultiLabelTunedThresholdCV(DistributionCalibrator(), metric="macro_f1",
                                       thresholds=grid, cv=3, max_combinations=1).fit(S, H)
    expected = brute_force(lambda y, p: label_f1(y, p, average="macro"), H, tuner.cv_proba_,
                           grid, 3)
    assert tuner.best_score_ == pytest.approx(expected)


def test_shared_threshold():
    S, H = data()
    grid = np.linspace(0.05, 0.95, 19)
    tuner = MultiLabelTunedThresholdCV(DistributionCalibrator(), per_label=False, cv=3).fit(S, H)
    assert len(set(tuner.thresholds_)) == 1
    best = max(example_f1(H, (tuner.cv_proba_ >= t).astype(float)) for t in grid)
    assert tuner.best_score_ == pytest.approx(best)
    np.testing.assert_array_equal(tuner.predict(S),
                                  (tuner.predict_proba(S) >= tuner.thresholds_).astype(int))


def test_custom_metric_and_bad_thresholds():
    S, H = data()
    tuner = MultiLabelTunedThresholdCV(DistributionCalibrator(), cv=3, thresholds=[0.2, 0.8],
                                       metric=lambda y, p: -p.sum()).fit(S, H)
    np.testing.assert_array_equal(tuner.thresholds_, [0.8, 0.8])  # fewest positives
    with pytest.raises(ValueError, match="open interval"):
        MultiLabelTunedThresholdCV(DistributionCalibrator(), thresholds=[0.0, 0.5]).fit(S, H)


@pytest.mark.filterwarnings("ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning")
def test_tuning_the_llm_classifier_reuses_the_cache(tiny_llama):
    texts = TEXTS + [t + " again" for t in TEXTS]
    y = LABEL_LISTS * 2
    Y = np.array([[lab in row for lab in LABELS] for row in y], float)
    llm = LLMMultiLabelClassifier(model=tiny_llama, labels=LABELS, n_shots=2, max_new_tokens=5,
                                  show_progress=False)
    cv = KFold(4, shuffle=True, random_state=0)
    MultiLabelTunedThresholdCV(llm, cv=cv).fit(texts, Y)
    assert get_scoring_stats()["texts_scored"] == len(texts)  # each held-out text once
    for metric in ("micro_f1", "macro_f1"):
        MultiLabelTunedThresholdCV(llm, metric=metric, cv=cv).fit(texts, Y)
    assert get_scoring_stats()["texts_scored"] == len(texts)
    np.testing.assert_allclose(cross_val_predict_proba(llm, texts, Y, cv=cv).shape, Y.shape)
