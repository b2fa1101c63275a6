"""Model selection for soft multi-label targets."""

from __future__ import annotations

import itertools
from functools import partial
from numbers import Integral

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.model_selection import cross_validate
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._validation import check_proportions
from .metrics import example_f1, label_f1


def cross_val_predict_proba(estimator, X, y, *, cv=None, groups=None, n_jobs=None,
                            params=None) -> np.ndarray:
    """Out-of-fold ``predict_proba`` that leaves soft targets untouched.

    ``sklearn.model_selection.cross_val_predict(method="predict_proba")``
    label-encodes every column of ``y`` before fitting, which turns annotator
    proportions into class indices. This function fits the same folds through
    :func:`~sklearn.model_selection.cross_validate` (which passes ``y`` as it
    is) and assembles each fold's ``predict_proba`` on its test rows.

    Parameters
    ----------
    estimator : estimator with ``predict_proba`` returning (n, n_labels)
    X : array-like or list of str
    y : array-like of shape (n_samples, n_labels)
    cv : int, cross-validation generator or iterable, default=None
        A partition of the rows (every row tested once), as for
        ``cross_val_predict``.
    groups, n_jobs, params :
        Passed to :func:`~sklearn.model_selection.cross_validate`.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_labels)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llm_multilabel import DistributionCalibrator
    >>> rng = np.random.default_rng(0)
    >>> H = rng.integers(0, 4, (60, 2)) / 3
    >>> S = np.clip(H + rng.normal(0, 0.1, H.shape), 0.01, 0.99)
    >>> cross_val_predict_proba(DistributionCalibrator(), S, H, cv=3).shape
    (60, 2)
    """
    result = cross_validate(estimator, X, y, cv=cv, groups=groups, n_jobs=n_jobs,
                            params=params, return_estimator=True, return_indices=True,
                            scoring=None, error_score="raise")
    n_samples = len(y)
    proba = None
    seen = np.zeros(n_samples, dtype=int)
    X_rows = X if hasattr(X, "shape") else np.asarray(X, dtype=object)
    for fitted, test in zip(result["estimator"], result["indices"]["test"]):
        fold = np.asarray(fitted.predict_proba(
            X_rows[test] if hasattr(X, "shape") else list(X_rows[test])))
        if proba is None:
            proba = np.zeros((n_samples, fold.shape[1]))
        proba[test] = fold
        seen[test] += 1
    if not (seen == 1).all():
        raise ValueError("cross_val_predict_proba needs a partition: every row tested once.")
    return proba


def _fast_f1(Y: np.ndarray, pred: np.ndarray, *, kind: str) -> float:
    """example/micro/macro F1 of 0/1 ``pred`` against gold ``Y >= 0.5`` (zero_division=0)."""
    gold, pred = Y >= 0.5, pred >= 0.5
    if kind == "example_f1":
        denom = gold.sum(axis=1) + pred.sum(axis=1)
        inter = (gold & pred).sum(axis=1)
        return float(np.where(denom == 0, 1.0, 2 * inter / np.maximum(denom, 1)).mean())
    axis = None if kind == "micro_f1" else 0
    tp = (gold & pred).sum(axis=axis)
    denom = gold.sum(axis=axis) + pred.sum(axis=axis)
    return float(np.mean(np.where(denom == 0, 0.0, 2 * tp / np.maximum(denom, 1))))


def _score_thresholds(metric, Y: np.ndarray, proba: np.ndarray, thresholds: np.ndarray) -> float:
    return float(metric(Y, (proba >= thresholds).astype(float)))


class MultiLabelTunedThresholdCV(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Tune one decision threshold per label (or one shared) by cross-validation.

    scikit-learn's :class:`~sklearn.model_selection.TunedThresholdClassifierCV`
    is binary-only. This meta-estimator computes out-of-fold probabilities of
    any estimator with ``predict_proba`` (via :func:`cross_val_predict_proba`,
    so soft targets stay soft), picks the thresholds that maximise ``metric``
    on them, then refits the estimator on all data. With
    :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier` the step cache
    makes the search itself free: only the cross-validation scores texts.

    Parameters
    ----------
    estimator : estimator with ``predict_proba``
    metric : {"example_f1", "micro_f1", "macro_f1"} or callable, default="example_f1"
        A callable gets ``(y_true, y_pred_01)`` and returns a score to maximise.
    per_label : bool, default=True
        One threshold per label; False tunes a single shared threshold.
    thresholds : int or array-like, default=19
        Candidate thresholds; an int ``k`` means ``linspace(0.05, 0.95, k)``.
    cv : int, cross-validation generator or iterable, default=5
    max_combinations : int, default=5000
        Per-label search is exhaustive while ``len(thresholds) ** n_labels`` is
        at most this; beyond, coordinate ascent from the best shared threshold
        (exact for separable metrics such as macro-F1).
    refit : bool, default=True
        Refit ``estimator`` on all data after tuning.

    Attributes
    ----------
    thresholds_ : ndarray of shape (n_labels,)
    best_score_ : float
        ``metric`` of the out-of-fold probabilities at ``thresholds_``.
    cv_proba_ : ndarray of shape (n_samples, n_labels)
    estimator_ : fitted estimator (when ``refit``)
    classes_ : list of ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llm_multilabel import DistributionCalibrator
    >>> rng = np.random.default_rng(0)
    >>> H = rng.integers(0, 4, (90, 2)) / 3
    >>> S = np.clip(H + rng.normal(0, 0.2, H.shape), 0.01, 0.99)
    >>> tuner = MultiLabelTunedThresholdCV(DistributionCalibrator(), cv=3).fit(S, H)
    >>> tuner.thresholds_.shape, tuner.predict(S).shape
    ((2,), (90, 2))
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "metric": [StrOptions({"example_f1", "micro_f1", "macro_f1"}), callable],
        "per_label": ["boolean"],
        "thresholds": [Interval(Integral, 2, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "max_combinations": [Interval(Integral, 1, None, closed="left")],
        "refit": ["boolean"],
    }

    def __init__(self, estimator, *, metric="example_f1", per_label: bool = True,
                 thresholds=19, cv=5, max_combinations: int = 5000, refit: bool = True):
        self.estimator = estimator
        self.metric = metric
        self.per_label = per_label
        self.thresholds = thresholds
        self.cv = cv
        self.max_combinations = max_combinations
        self.refit = refit

    def _metric(self):
        if callable(self.metric):
            return self.metric
        if self.metric == "example_f1":
            return example_f1
        return partial(label_f1, average=self.metric.split("_")[0])

    def _search_metric(self):
        """Same values as :meth:`_metric`, vectorised for the threshold search."""
        if callable(self.metric):
            return self.metric
        return partial(_fast_f1, kind=self.metric)

    def _candidates(self) -> np.ndarray:
        if isinstance(self.thresholds, Integral):
            return np.linspace(0.05, 0.95, self.thresholds)
        grid = np.unique(np.asarray(self.thresholds, dtype=float))
        if grid.ndim != 1 or grid.size == 0 or grid.min() <= 0 or grid.max() >= 1:
            raise ValueError("thresholds must be values in the open interval (0, 1).")
        return grid

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **params):
        """Tune thresholds on out-of-fold probabilities, then refit.

        Returns
        -------
        self
        """
        Y = check_proportions(y)
        grid = self._candidates()
        metric = self._search_metric()
        self.cv_proba_ = cross_val_predict_proba(clone(self.estimator), X, Y, cv=self.cv,
                                                 params=params or None)
        if self.cv_proba_.shape != Y.shape:
            raise ValueError(f"predict_proba returned shape {self.cv_proba_.shape}; expected "
                             f"{Y.shape} (one column per label).")
        n_labels = Y.shape[1]
        shared = max(grid, key=lambda t: _score_thresholds(metric, Y, self.cv_proba_, t))
        best = np.full(n_labels, shared)
        if self.per_label and len(grid) ** n_labels <= self.max_combinations:
            best = np.array(max(
                itertools.product(grid, repeat=n_labels),
                key=lambda ts: _score_thresholds(metric, Y, self.cv_proba_, np.array(ts)),
            ))
        elif self.per_label:
            best = self._coordinate_ascent(metric, Y, grid, best)
        self.thresholds_ = best
        self.best_score_ = _score_thresholds(metric, Y, self.cv_proba_, best)
        self.classes_ = [np.array([0, 1]) for _ in range(n_labels)]
        if self.refit:
            self.estimator_ = clone(self.estimator).fit(X, y, **params)
        return self

    def _coordinate_ascent(self, metric, Y, grid, start: np.ndarray) -> np.ndarray:
        best = start.copy()
        score = _score_thresholds(metric, Y, self.cv_proba_, best)
        improved = True
        while improved:
            improved = False
            for k in range(len(best)):
                for t in grid:
                    trial = best.copy()
                    trial[k] = t
                    trial_score = _score_thresholds(metric, Y, self.cv_proba_, trial)
                    if trial_score > score + 1e-12:
                        best, score, improved = trial, trial_score, True
        return best

    def predict_proba(self, X) -> np.ndarray:
        """The refitted estimator's probabilities."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """0/1 labels with the tuned thresholds."""
        return (self.predict_proba(X) >= self.thresholds_).astype(int)

    def score(self, X, y, sample_weight=None) -> float:
        """``metric`` of :meth:`predict` against ``y``."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score.")
        return float(self._metric()(check_proportions(y), self.predict(X).astype(float)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags = inner.input_tags
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        return tags
