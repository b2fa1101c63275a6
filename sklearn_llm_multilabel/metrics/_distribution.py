"""Alignment metrics between predicted label probabilities and annotator proportions.

All metrics are computed per example and averaged over examples, with the
formulas of the paper (see ``PAPER_NOTES.md`` §4).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

EPS = 1e-8
#: the constraints of the two arrays every metric takes
_PAIR = {"y_true": ["array-like"], "y_proba": ["array-like"]}


def _check_pair(y_true, y_proba) -> tuple[np.ndarray, np.ndarray]:
    H = np.asarray(y_true, dtype=float)
    P = np.asarray(y_proba, dtype=float)
    if H.ndim != 2 or P.ndim != 2:
        raise ValueError(
            f"y_true and y_proba must be 2-d (n_samples, n_labels); got {H.shape} and {P.shape}."
        )
    if H.shape != P.shape:
        raise ValueError(f"y_true has shape {H.shape} but y_proba has shape {P.shape}.")
    if H.shape[0] == 0:
        raise ValueError("y_true is empty.")
    for name, arr in (("y_true", H), ("y_proba", P)):
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name} must hold finite values in [0, 1].")
    return H, P


@validate_params({**_PAIR, "eps": [Interval(Real, 0, 0.5, closed="neither")]},
                 prefer_skip_nested_validation=True)
def distribution_nll(y_true, y_proba, *, eps: float = EPS) -> float:
    """Mean over examples of the summed soft-target binary cross-entropy.

    ``NLL_i = −Σ_l [H_l ln p_l + (1 − H_l) ln(1 − p_l)]`` with ``p`` clipped
    to ``[eps, 1 − eps]``; natural log.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions in [0, 1] (or 0/1 gold labels).
    y_proba : array-like of shape (n_samples, n_labels)
        Predicted per-label probabilities.
    eps : float, default=1e-8

    Returns
    -------
    float

    Examples
    --------
    >>> round(distribution_nll([[1.0, 0.0]], [[0.5, 0.5]]), 4)
    1.3863
    """
    H, P = _check_pair(y_true, y_proba)
    P = np.clip(P, eps, 1 - eps)
    per_example = -(H * np.log(P) + (1 - H) * np.log1p(-P)).sum(axis=1)
    return float(per_example.mean())


@validate_params(_PAIR, prefer_skip_nested_validation=True)
def distribution_l1(y_true, y_proba) -> float:
    """Mean over examples of ``Σ_l |p_l − H_l|``.

    Examples
    --------
    >>> distribution_l1([[1.0, 0.0]], [[0.75, 0.5]])
    0.75
    """
    H, P = _check_pair(y_true, y_proba)
    return float(np.abs(P - H).sum(axis=1).mean())


@validate_params({**_PAIR, "threshold": [Interval(Real, 0, 1, closed="both")],
                  "empty_score": [Interval(Real, 0, 1, closed="both")]},
                 prefer_skip_nested_validation=True)
def example_f1(y_true, y_proba, *, threshold: float = 0.5, empty_score: float = 1.0) -> float:
    """Mean over examples of ``2|Ŷ ∩ Y| / (|Ŷ| + |Y|)``.

    Gold sets are ``y_true ≥ 0.5``, predicted sets ``y_proba ≥ threshold``; an
    example whose gold and predicted sets are both empty scores ``empty_score``.

    Examples
    --------
    >>> example_f1([[1, 0, 1], [0, 0, 0]], [[0.9, 0.2, 0.1], [0.1, 0.0, 0.3]])
    0.8333333333333333
    """
    H, P = _check_pair(y_true, y_proba)
    gold = H >= 0.5
    pred = P >= threshold
    inter = (gold & pred).sum(axis=1)
    denom = gold.sum(axis=1) + pred.sum(axis=1)
    safe = np.where(denom == 0, 1, denom)
    scores = np.where(denom == 0, empty_score, 2 * inter / safe)
    return float(scores.mean())


@validate_params({**_PAIR, "average": [StrOptions({"macro"}), None]},
                 prefer_skip_nested_validation=True)
def brier_score(y_true, y_proba, *, average: str | None = "macro"):
    """Per-label Brier score ``mean_i (p_il − H_il)²`` against soft targets.

    Parameters
    ----------
    y_true, y_proba : array-like of shape (n_samples, n_labels)
    average : {"macro"} or None, default="macro"
        None returns one score per label.

    Examples
    --------
    >>> brier_score([[1.0, 0.0], [0.5, 0.0]], [[0.5, 0.0], [0.5, 1.0]], average=None)
    array([0.125, 0.5  ])
    """
    H, P = _check_pair(y_true, y_proba)
    per_label = ((P - H) ** 2).mean(axis=0)
    return _average(per_label, average)


@validate_params({**_PAIR, "n_bins": [Interval(Integral, 1, None, closed="left")],
                  "average": [StrOptions({"macro"}), None]}, prefer_skip_nested_validation=True)
def expected_calibration_error(y_true, y_proba, *, n_bins: int = 10,
                               average: str | None = "macro"):
    """Per-label expected calibration error with equal-width bins.

    ``ECE_l = Σ_b (n_b / n) |mean_{i in b} p_il − mean_{i in b} H_il|``; with
    annotator proportions as ``H`` the reference is the mean proportion.

    Examples
    --------
    >>> round(expected_calibration_error([[1.0], [0.0]], [[0.9], [0.1]], n_bins=10), 6)
    0.1
    """
    H, P = _check_pair(y_true, y_proba)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}.")
    bins = np.minimum((P * n_bins).astype(int), n_bins - 1)
    per_label = np.zeros(P.shape[1])
    for label in range(P.shape[1]):
        for b in np.unique(bins[:, label]):
            rows = bins[:, label] == b
            gap = abs(P[rows, label].mean() - H[rows, label].mean())
            per_label[label] += rows.mean() * gap
    return _average(per_label, average)


def _average(per_label: np.ndarray, average: str | None):
    if average is None:
        return per_label
    if average == "macro":
        return float(per_label.mean())
    raise ValueError(f"average must be 'macro' or None; got {average!r}.")


@validate_params({**_PAIR, "average": [StrOptions({"micro", "macro"})],
                  "threshold": [Interval(Real, 0, 1, closed="both")]},
                 prefer_skip_nested_validation=True)
def label_f1(y_true, y_proba, *, average: str = "micro", threshold: float = 0.5) -> float:
    """Micro or macro F1 over labels (sklearn's ``f1_score``), gold sets ``y_true ≥ 0.5``.

    Examples
    --------
    >>> label_f1([[1, 0], [1, 1]], [[0.9, 0.2], [0.4, 0.8]], average="micro")
    0.8
    """
    from sklearn.metrics import f1_score

    H, P = _check_pair(y_true, y_proba)
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro'; got {average!r}.")
    return float(f1_score(H >= 0.5, P >= threshold, average=average, zero_division=0.0))
