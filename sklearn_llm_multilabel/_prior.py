"""The constant prior: every text gets each label's training rate, the baseline of every table."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._validation import _is_label_lists, check_targets, check_threshold
from .metrics import example_f1


class ConstantPriorClassifier(ClassifierMixin, BaseEstimator):
    """Predict each label's mean training proportion for every input.

    The baseline every alignment table starts with ("constant prior"): a
    model that reads nothing scores this on NLL and L1, and a model worth
    using beats it. It takes any ``X`` (texts, features, a DataFrame) and
    reads only its length, so it sits in the same ``GridSearchCV`` or
    ``cross_validate`` as an LLM or a TF-IDF pipeline, with the same scorers.

    Parameters
    ----------
    labels : list of str or None, default=None
        Label names, in column order (needed for label lists as ``y``; taken
        from a DataFrame's columns, else ``label_0``, ...).
    threshold : float or array-like of shape (n_labels,), default=0.5
        :meth:`predict` marks the labels whose prior reaches it.

    Attributes
    ----------
    prior_ : ndarray of shape (n_labels,)
        Each label's mean training proportion.
    label_names_ : ndarray of str
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels`` (scikit-learn's multi-label form).

    Examples
    --------
    >>> prior = ConstantPriorClassifier().fit(["a", "b", "c", "d"],
    ...                                       [[1, 0], [0.5, 0], [1, 1], [0.5, 0]])
    >>> prior.predict_proba(["new text"])
    array([[0.75, 0.25]])
    >>> prior.predict(["new text"])
    array([[1, 0]])
    >>> list(prior.label_names_)
    ['label_0', 'label_1']
    """

    _parameter_constraints: dict = {
        "labels": ["array-like", None],
        "threshold": [Interval(Real, 0, 1, closed="neither"), "array-like"],
    }

    def __init__(self, *, labels=None, threshold=0.5):
        self.labels = labels
        self.threshold = threshold

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store each label's mean proportion in ``y`` (0/1, proportions or label lists)."""
        n = _n_samples(X)
        if n == 0:
            raise ValueError("X is empty: at least one sample is needed.")
        labels = None if self.labels is None else list(self.labels)
        if labels is None and not _is_label_lists(y) and not hasattr(y, "columns"):
            shape = np.shape(y)  # an unnamed matrix: its columns are numbered
            labels = [f"label_{j}" for j in range(shape[1])] if len(shape) == 2 else None
        Y, names = check_targets(y, n, labels)
        check_threshold(self.threshold, len(names))
        self.prior_ = Y.mean(axis=0)
        self.label_names_ = np.array(names, dtype=object)
        self.classes_ = [np.array([0, 1]) for _ in names]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``prior_`` for every row of ``X``: shape (n_samples, n_labels)."""
        check_is_fitted(self)
        return np.tile(self.prior_, (_n_samples(X), 1))

    def predict(self, X) -> np.ndarray:
        """The labels whose prior reaches ``threshold``, for every row: 0/1 (n, n_labels)."""
        proba = self.predict_proba(X)
        return (proba >= check_threshold(self.threshold, proba.shape[1])).astype(int)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean example-F1 of :meth:`predict` against ``y`` (accuracy is meaningless for soft
        targets)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score.")
        check_is_fitted(self)
        Y, _ = check_targets(y, _n_samples(X), list(self.label_names_))
        return example_f1(Y, self.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        return tags


def _n_samples(X) -> int:
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a sequence of samples (texts or rows), not a single string.")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        raise TypeError(f"X must be a sequence of samples; got {type(X).__name__}.") from None
