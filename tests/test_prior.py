"""The constant prior as an estimator, and baselines scored beside the LLM with one set of
scorers (scikit-learn's multi-output predict_proba included)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from sklearn_llm_multilabel import ConstantPriorClassifier, DistributionCalibrator
from sklearn_llm_multilabel.metrics import (
    alignment_report,
    alignment_scorers,
    distribution_nll,
    per_label_proba,
)

from .conftest import LABEL_LISTS, LABELS, TEXTS, make_clf, proportions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_prior_predicts_the_training_rates_for_any_input():
    Y = np.array([[1, 0, 0.5], [0, 0, 0.5], [1, 1, 0], [1, 0, 0]])
    prior = ConstantPriorClassifier(labels=["a", "b", "c"]).fit(["t"] * 4, Y)
    np.testing.assert_allclose(prior.prior_, [0.75, 0.25, 0.25])
    np.testing.assert_allclose(prior.predict_proba(np.zeros((3, 7))), [[0.75, 0.25, 0.25]] * 3)
    assert prior.predict(["x", "y"]).tolist() == [[1, 0, 0]] * 2
    assert prior.set_params(threshold=[0.8, 0.2, 0.5]).predict(["x"]).tolist() == [[0, 1, 0]]
    lists = ConstantPriorClassifier().fit(TEXTS, LABEL_LISTS)
    assert list(lists.label_names_) == sorted(LABELS)
    assert clone(prior).get_params() == prior.get_params()
    with pytest.raises(NotFittedError):
        ConstantPriorClassifier().predict_proba(["x"])
    with pytest.raises(TypeError, match="not a single string"):
        prior.predict_proba("one text")
    with pytest.raises(ValueError, match="X is empty"):
        ConstantPriorClassifier().fit([], np.zeros((0, 2)))


def test_an_llm_tfidf_and_the_prior_in_one_grid_search(tiny_llama):
    """The same scorers rank the three; the prior's NLL is the one alignment_report gives."""
    Y = proportions()
    search = GridSearchCV(
        Pipeline([("model", ConstantPriorClassifier())]),
        {"model": [ConstantPriorClassifier(labels=LABELS),
                   make_pipeline(TfidfVectorizer(), DistributionCalibrator(method="linear")),
                   make_clf(tiny_llama, labels=LABELS)]},
        scoring=alignment_scorers(), refit="nll", cv=KFold(2))
    search.fit(TEXTS, Y)
    scores = search.cv_results_["mean_test_nll"]
    assert len(scores) == 3 and np.all(np.isfinite(scores))
    first = [(train, test) for train, test in KFold(2).split(TEXTS)]
    expected = np.mean([-alignment_report(Y[test], np.tile(Y[train].mean(0), (len(test), 1)))[
        "model"]["nll"] for train, test in first])
    assert scores[0] == pytest.approx(expected)


def test_scikit_learns_multi_output_predict_proba_is_read_by_the_metrics():
    rng = np.random.default_rng(0)
    X, Y = rng.random((30, 4)), (rng.random((30, 3)) < 0.5).astype(int)
    model = MultiOutputClassifier(LogisticRegression()).fit(X, Y)
    listed = model.predict_proba(X)
    assert isinstance(listed, list) and listed[0].shape == (30, 2)
    stacked = np.column_stack([p[:, 1] for p in listed])
    np.testing.assert_array_equal(per_label_proba(listed), stacked)
    assert distribution_nll(Y, listed) == distribution_nll(Y, stacked)
    result = cross_validate(model, X, Y, scoring=alignment_scorers(), cv=2)
    assert np.isfinite(result["test_nll"]).all()
    one_class = [listed[0], listed[1][:, :1]]
    with pytest.raises(ValueError, match="label 1's has 1 column.*saw only one class"):
        distribution_nll(Y[:, :2], one_class)


def test_alignment_report_takes_the_prior_itself():
    H = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    P = np.full((3, 2), 0.5)
    by_rows = alignment_report(H, P, train_proportions=np.array([[0.2, 0.6], [0.4, 0.2]]))
    by_vector = alignment_report(H, P, train_proportions=[0.3, 0.4])
    assert by_rows["constant prior"] == pytest.approx(by_vector["constant prior"])
    with pytest.raises(ValueError, match=r"or \(2,\) for the prior itself; got \(3,\)"):
        alignment_report(H, P, train_proportions=[0.3, 0.4, 0.1])
