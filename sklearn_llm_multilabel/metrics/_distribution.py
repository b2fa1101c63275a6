"""Alignment metrics between predicted label probabilities and annotator proportions.

All metrics are computed per example and averaged over examples, with the
formulas of the paper (see ``PAPER_NOTES.md`` §4).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-8


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


def distribution_l1(y_true, y_proba) -> float:
    """Mean over examples of ``Σ_l |p_l − H_l|``.

    Examples
    --------
    >>> distribution_l1([[1.0, 0.0]], [[0.75, 0.5]])
    0.75
    """
    H, P = _check_pair(y_true, y_proba)
    return float(np.abs(P - H).sum(axis=1).mean())


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
