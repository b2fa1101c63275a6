"""Aggregation: pure numpy functions from cached step scores to probabilities.

Shapes (see :func:`pack_steps`):

* ``scores[i, t, k]``: label score (max logit over the label's first-token
  variants) of text ``i`` at label-generation step ``t`` for label ``k``; the
  last column ``k = L`` is the empty-set word (``none``).
* ``mask[i, t]``: whether step ``t`` exists for text ``i``. Every row has at
  least one step: a text whose generation contained no label step carries the
  scores of its first generated position instead (and is counted and warned
  about by the caller).

Each function returns an ``(n, L)`` array of independent per-label
probabilities (``none`` is not output).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax

EPS = 1e-8


def step_distributions(scores: np.ndarray) -> np.ndarray:
    """Softmax over labels + none at every step: ``P_t(l)``.

    Examples
    --------
    >>> step_distributions(np.log([[1.0, 1.0, 2.0]])).round(2)
    array([[0.25, 0.25, 0.5 ]])
    """
    return softmax(np.asarray(scores, dtype=np.float64), axis=-1)


def _check(scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if scores.ndim != 3 or scores.shape[-1] < 2:
        raise ValueError(f"scores must have shape (n, steps, n_labels + 1); got {scores.shape}.")
    if mask.shape != scores.shape[:2]:
        raise ValueError(f"mask must have shape {scores.shape[:2]}; got {mask.shape}.")
    if len(mask) and not mask[:, 0].all():
        raise ValueError("every text needs at least one step (mask[:, 0] must be True).")
    return scores, mask


def aggregate_first(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Compare-to-none at the first step: ``p_l = σ(s_t0(l) − s_t0(none))``.

    Equal to ``P_t0(l) / (P_t0(l) + P_t0(none))``.

    Examples
    --------
    >>> aggregate_first(np.log([[[3.0, 1.0, 1.0]]]), np.array([[True]]))
    array([[0.75, 0.5 ]])
    """
    scores, mask = _check(scores, mask)
    first = scores[:, 0, :]
    return expit(first[:, :-1] - first[:, -1:])


def aggregate_max(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Max over generations: ``p_l = max_t P_t(l)``, floored at ``EPS``.

    Examples
    --------
    >>> s = np.log([[[2.0, 1.0, 1.0], [1.0, 3.0, 1e-300]]])
    >>> aggregate_max(s, np.array([[True, True]]))
    array([[0.5 , 0.75]])
    """
    scores, mask = _check(scores, mask)
    probs = np.where(mask[..., None], step_distributions(scores), -np.inf)
    return np.maximum(probs.max(axis=1)[:, :-1], EPS)


def aggregate_mean(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over generations: ``p_l = mean_t P_t(l)``, floored at ``EPS``.

    Examples
    --------
    >>> s = np.log([[[2.0, 1.0, 1.0], [1.0, 3.0, 1e-300]]])
    >>> aggregate_mean(s, np.array([[True, True]]))
    array([[0.375, 0.5  ]])
    """
    scores, mask = _check(scores, mask)
    probs = step_distributions(scores) * mask[..., None]
    mean = probs.sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return np.maximum(mean[:, :-1], EPS)


def aggregate_hard(parsed: np.ndarray) -> np.ndarray:
    """Hard predictions: ``1 − EPS`` for labels the model wrote, ``EPS`` otherwise.

    Examples
    --------
    >>> aggregate_hard(np.array([[True, False]]))
    array([[9.9999999e-01, 1.0000000e-08]])
    """
    parsed = np.asarray(parsed, dtype=bool)
    if parsed.ndim != 2:
        raise ValueError(f"parsed must be 2-d (n, n_labels); got shape {parsed.shape}.")
    return np.where(parsed, 1.0 - EPS, EPS)


#: aggregations computed from step scores; "hard" uses parsed labels instead.
STEP_AGGREGATIONS = {
    "first": aggregate_first,
    "max": aggregate_max,
    "mean": aggregate_mean,
}
#: every aggregation the classifier offers; "unary" and "binary" run their own prompts
BREAKDOWN_AGGREGATIONS = ("unary", "binary")
AGGREGATIONS = (*STEP_AGGREGATIONS, "hard", *BREAKDOWN_AGGREGATIONS)


def pack_steps(step_scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pad ragged per-text step scores into ``(scores, mask)``.

    Parameters
    ----------
    step_scores : list of ndarray, each of shape (n_steps_i >= 1, L + 1)

    Returns
    -------
    scores : ndarray of shape (n, max_steps, L + 1)
    mask : ndarray of shape (n, max_steps), bool

    Examples
    --------
    >>> scores, mask = pack_steps([np.zeros((2, 3)), np.ones((1, 3))])
    >>> scores.shape, mask.tolist()
    ((2, 2, 3), [[True, True], [True, False]])
    """
    if not step_scores:
        raise ValueError("step_scores is empty.")
    n_cols = {s.shape[1] for s in step_scores}
    if len(n_cols) != 1:
        raise ValueError(f"all texts must have the same number of label columns; got {n_cols}.")
    n_steps = [len(s) for s in step_scores]
    if min(n_steps) < 1:
        raise ValueError("every text needs at least one step (use the first position as fallback).")
    T = max(n_steps)
    scores = np.zeros((len(step_scores), T, n_cols.pop()), dtype=np.float64)
    mask = np.zeros((len(step_scores), T), dtype=bool)
    for i, s in enumerate(step_scores):
        scores[i, : len(s)] = s
        mask[i, : len(s)] = True
    return scores, mask
