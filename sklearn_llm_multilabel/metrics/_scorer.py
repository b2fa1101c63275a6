"""scikit-learn scorers for alignment metrics and a one-call report."""

from __future__ import annotations

import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import make_scorer
from sklearn.utils._param_validation import Interval, validate_params

from ._bootstrap import (
    bootstrap_indices,
    bootstrap_metric_values,
    check_n_bootstrap,
    interval_refusal,
    percentile_interval,
)
from ._distribution import (
    _check_pair,
    brier_score,
    distribution_l1,
    distribution_nll,
    example_f1,
    expected_calibration_error,
    label_f1,
    soft_label_manhattan,
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
    "manhattan": (soft_label_manhattan, False),
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
        ``macro_f1``, ``manhattan`` (Le-Wi-Di's soft-label Manhattan distance).

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
                  "train_proportions": ["array-like", None],
                  "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
                  "confidence": [Interval(Real, 0, 1, closed="neither")],
                  "random_state": ["random_state"]}, prefer_skip_nested_validation=True)
def alignment_report(y_true, y_proba, *, train_proportions=None, n_bootstrap: int = 0,
                     confidence: float = 0.95, random_state=None) -> dict[str, dict]:
    """All alignment metrics for ``y_proba``, and for a constant prior when given.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions (or 0/1 gold labels).
    y_proba : array-like of shape (n_samples, n_labels)
    train_proportions : array-like of shape (n_train, n_labels) or (n_labels,), or None
        Training targets (or the per-label prior itself); their column means
        form the constant-prior baseline
        (every ``p_l`` = the label's training frequency), which scores well on
        NLL and L1 when most labels are absent — read those with F1.
    n_bootstrap : int, default=0
        Resamples of the texts (with replacement) for percentile intervals:
        each row gains ``<metric>_ci``, a ``(low, high)`` pair, and, with a
        constant prior, the model row gains ``<metric>_vs_prior_ci``: the
        interval of (model − prior) on the same resamples (paired). An
        interval that excludes 0 is a difference the test set supports. 0:
        no intervals. Fewer than 10 texts or 200 resamples give none either,
        with a warning saying why; more than 100,000 resamples are an error.
    confidence : float, default=0.95
        The share of the resampled values the interval holds.
    random_state : int, RandomState or None
        Seed of the resamples; reports computed with the same seed on the
        same test set share them (paired across calls).

    Returns
    -------
    dict
        ``{"model": {metric: value, ...}, "constant prior": {...}}``.

    Examples
    --------
    >>> report = alignment_report([[1.0, 0.0]], [[0.9, 0.1]], train_proportions=[[0.5, 0.5]])
    >>> sorted(report), round(report["model"]["l1"], 2)
    (['constant prior', 'model'], 0.2)
    >>> H = [[1.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.0, 0.5]]
    >>> P = [[0.9, 0.1], [0.6, 0.1], [0.2, 0.7], [0.1, 0.4]]
    >>> H, P = H * 3, P * 3  # 12 texts: intervals need at least 10
    >>> report = alignment_report(H, P, train_proportions=H, n_bootstrap=200, random_state=0)
    >>> low, high = report["model"]["l1_ci"]
    >>> bool(low <= report["model"]["l1"] <= high)
    True
    >>> bool(report["model"]["l1_vs_prior_ci"][1] < 0)  # lower than the prior on every resample
    True
    """
    H, P = _check_pair(y_true, y_proba)
    rows = {"model": P}
    if train_proportions is not None:
        T = np.asarray(train_proportions, dtype=float)
        if T.shape == (H.shape[1],):  # the prior itself, one rate per label
            T = T[None, :]
        if T.ndim != 2 or T.shape[1] != H.shape[1] or not len(T):
            raise ValueError(
                f"train_proportions must have shape (n_train, {H.shape[1]}), or ({H.shape[1]},) "
                f"for the prior itself; got {T.shape}."
            )
        if not np.all(np.isfinite(T)) or T.min() < 0 or T.max() > 1:
            raise ValueError("train_proportions must hold finite values in [0, 1].")
        rows["constant prior"] = np.tile(T.mean(axis=0), (len(H), 1))
    report: dict[str, dict] = {
        name: {metric: float(func(H, proba)) for metric, (func, _) in ALIGNMENT_METRICS.items()}
        for name, proba in rows.items()
    }
    check_n_bootstrap(n_bootstrap, len(H))
    refusal = interval_refusal(len(H), n_bootstrap)
    if refusal:
        warnings.warn(f"alignment_report: {refusal}.", UserWarning, stacklevel=2)
    elif n_bootstrap:
        indices = bootstrap_indices(len(H), n_bootstrap, random_state)
        funcs = {metric: func for metric, (func, _) in ALIGNMENT_METRICS.items()}
        values = {name: bootstrap_metric_values(H, proba, funcs, indices)
                  for name, proba in rows.items()}
        for name, found in values.items():
            for metric, draws in found.items():
                report[name][f"{metric}_ci"] = percentile_interval(draws, confidence)
        if "constant prior" in values:
            for metric, draws in values["model"].items():
                report["model"][f"{metric}_vs_prior_ci"] = percentile_interval(
                    draws - values["constant prior"][metric], confidence)
    return report
