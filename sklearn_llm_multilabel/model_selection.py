"""Model selection for soft multi-label targets."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import cross_validate


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
