"""scikit-learn scorers for alignment metrics and a one-call report."""

from __future__ import annotations

from functools import partial

import numpy as np
from sklearn.metrics import make_scorer
from sklearn.utils._param_validation import validate_params

from ._distribution import (
    _check_pair,
    brier_score,
    distribution_l1,
    distribution_nll,
    example_f1,
    expected_calibration_error,
    label_f1,
)

#: name -> (metric, greater_is_better)
ALIGNMENT_METRICS = {
    "nll": (distribution_nll, False),
    "l1": (distribution_l1, False),
    "example_f1": (example_f1, True),
    "brier": (brier_score, False),
    "ece": (expected_calibration_error, False),
    "micro_f1": (partial(label_f1, average="micro"), True),
    "macro_f1": (partial(label_f1, average="macro"), True),
}

#: metrics of label *sets*: their scorers read the estimator's ``predict``, so its
#: ``threshold`` (one value or one per label) is what they score
THRESHOLDED_METRICS = frozenset({"example_f1", "micro_f1", "macro_f1"})


def alignment_scorers() -> dict:
    """Scorers for ``GridSearchCV(scoring=..., refit=...)``.

    The distribution metrics (NLL, L1, Brier, ECE) read ``predict_proba``.
    The label-set metrics (example, micro and macro F1; see
    :data:`THRESHOLDED_METRICS`) read the estimator's ``predict``, so they
    score its decisions: a search over ``threshold`` (or
    ``calibrator__threshold`` in a Pipeline, or per-label thresholds) tunes
    what they measure. A multi-metric search calls ``predict_proba`` and
    ``predict`` once each per fold; :class:`LLMMultiLabelClassifier` serves
    the second call from its step cache, so the model still runs once per
    text. Losses are negated by scikit-learn (``greater_is_better=False``):
    higher scores are always better.

    Returns
    -------
    dict
        Keys ``nll``, ``l1``, ``example_f1``, ``brier``, ``ece``, ``micro_f1``,
        ``macro_f1``.

    Examples
    --------
    >>> scorers = alignment_scorers()
    >>> sorted(scorers)[:3]
    ['brier', 'ece', 'example_f1']
    >>> scorers["example_f1"]._response_method, scorers["nll"]._response_method
    ('predict', 'predict_proba')
    """
    return {
        name: make_scorer(
            metric, greater_is_better=greater,
            response_method="predict" if name in THRESHOLDED_METRICS else "predict_proba",
        )
        for name, (metric, greater) in ALIGNMENT_METRICS.items()
    }


@validate_params({"y_true": ["array-like"], "y_proba": ["array-like"],
                  "train_proportions": ["array-like", None]}, prefer_skip_nested_validation=True)
def alignment_report(y_true, y_proba, *, train_proportions=None) -> dict[str, dict[str, float]]:
    """All alignment metrics for ``y_proba``, and for a constant prior when given.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions (or 0/1 gold labels).
    y_proba : array-like of shape (n_samples, n_labels)
    train_proportions : array-like of shape (n_train, n_labels) or None
        Training targets; their column means form the constant-prior baseline
        (every ``p_l`` = the label's training frequency), which scores well on
        NLL and L1 when most labels are absent — read those with F1.

    Returns
    -------
    dict
        ``{"model": {metric: value}, "constant prior": {...}}``.

    Examples
    --------
    >>> report = alignment_report([[1.0, 0.0]], [[0.9, 0.1]], train_proportions=[[0.5, 0.5]])
    >>> sorted(report), round(report["model"]["l1"], 2)
    (['constant prior', 'model'], 0.2)
    """
    H, P = _check_pair(y_true, y_proba)
    rows = {"model": P}
    if train_proportions is not None:
        T = np.asarray(train_proportions, dtype=float)
        if T.ndim != 2 or T.shape[1] != H.shape[1]:
            raise ValueError(
                f"train_proportions must have shape (n_train, {H.shape[1]}); got {T.shape}."
            )
        rows["constant prior"] = np.tile(T.mean(axis=0), (len(H), 1))
    return {
        name: {metric: float(func(H, proba)) for metric, (func, _) in ALIGNMENT_METRICS.items()}
        for name, proba in rows.items()
    }
