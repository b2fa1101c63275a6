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
probabilities (``none`` is not output). :data:`AGGREGATION_TABLE` lists every
aggregation with what it consumes; the classifier's ``aggregation`` options,
the CLI's choices and :mod:`sklearn_llm_multilabel.aggregation` derive from it.

SciPy and scikit-learn are imported by the functions that use them, so the
table of aggregations (read by ``sklml --help``) costs only NumPy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-8


def step_distributions(scores: np.ndarray) -> np.ndarray:
    """Softmax over labels + none at every step: ``P_t(l)``.

    Examples
    --------
    >>> step_distributions(np.log([[1.0, 1.0, 2.0]])).round(2)
    array([[0.25, 0.25, 0.5 ]])
    """
    from scipy.special import softmax

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
    from scipy.special import expit

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


def aggregate_unary(answer_scores: np.ndarray) -> np.ndarray:
    """``p_l = P(reasonable)`` from the softmax over the two answers of label l's query.

    Parameters
    ----------
    answer_scores : ndarray of shape (n, L, 2)
        (reasonable, unreasonable) scores.

    Examples
    --------
    >>> aggregate_unary(np.log([[[3.0, 1.0], [1.0, 1.0]]]))
    array([[0.75, 0.5 ]])
    """
    from scipy.special import expit

    S = np.asarray(answer_scores, dtype=np.float64)
    if S.ndim != 3 or S.shape[-1] != 2:
        raise ValueError(f"answer_scores must have shape (n, L, 2); got {S.shape}.")
    return expit(S[..., 0] - S[..., 1])


def fit_bradley_terry(
    p: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    n_candidates: int,
    *,
    l2: float = 0.01,
    lr: float = 1e-2,
    max_iter: int = 5000,
    patience: int = 10,
    random_state=0,
) -> np.ndarray:
    """Bradley–Terry scores per example, fitted with Adam as in the paper.

    Minimises, for every example independently,
    ``Σ_(i<j) −[p_ij log σ(s_i − s_j) + (1 − p_ij) log σ(s_j − s_i)] + l2 ‖s‖²``
    with Adam (``lr``), at most ``max_iter`` iterations, stopping an example
    after ``patience`` iterations without improvement and keeping its best
    scores; the initialisation is seeded.

    Parameters
    ----------
    p : ndarray of shape (n, n_pairs)
        ``P(i preferred over j)`` for every pair.
    pairs : sequence of (i, j)
    n_candidates : int

    Returns
    -------
    s : ndarray of shape (n, n_candidates)

    Examples
    --------
    >>> s = fit_bradley_terry(np.array([[0.9, 0.9, 0.5]]), [(0, 1), (0, 2), (1, 2)], 3)
    >>> bool(s[0, 0] > s[0, 1]) and bool(s[0, 0] > s[0, 2])
    True
    """
    from scipy.special import expit
    from sklearn.utils import check_random_state

    p = np.asarray(p, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=int)
    if p.ndim != 2 or p.shape[1] != len(pairs):
        raise ValueError(f"p must have shape (n, {len(pairs)}); got {p.shape}.")
    rng = check_random_state(random_state)
    n = len(p)
    s = rng.normal(0.0, 0.01, size=(n, n_candidates))
    m = np.zeros_like(s)
    v = np.zeros_like(s)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    best_s, best_loss = s.copy(), np.full(n, np.inf)
    stale = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    i_idx, j_idx = pairs[:, 0], pairs[:, 1]
    for t in range(1, max_iter + 1):
        d = s[:, i_idx] - s[:, j_idx]
        loss = (np.logaddexp(0, -d) * p + np.logaddexp(0, d) * (1 - p)).sum(axis=1) \
            + l2 * (s ** 2).sum(axis=1)
        improved = loss < best_loss - 1e-12
        best_s[improved] = s[improved]
        best_loss[improved] = loss[improved]
        stale = np.where(improved, 0, stale + 1)
        active &= stale < patience
        if not active.any():
            break
        grad_d = expit(d) - p
        grad = 2 * l2 * s
        np.add.at(grad.T, i_idx, grad_d.T)
        np.add.at(grad.T, j_idx, -grad_d.T)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad ** 2
        step = lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        s = np.where(active[:, None], s - step, s)
    return best_s


def aggregate_binary(answer_scores: np.ndarray, pairs: Sequence[tuple[int, int]],
                     random_state=0) -> np.ndarray:
    """``p_l = σ(s_l − s_none)`` from Bradley–Terry scores of the pairwise answers.

    Parameters
    ----------
    answer_scores : ndarray of shape (n, n_pairs, 2)
        (a, b) scores; for pair ``(i, j)`` label ``i`` is option ``a``.
    pairs : sequence of (i, j)
        Over labels + none (none is the last candidate).

    Returns
    -------
    ndarray of shape (n, L)

    Examples
    --------
    >>> pairs = [(0, 1), (0, 2), (1, 2)]  # labels 0 and 1, none = 2
    >>> scores = np.log([[[9.0, 1.0], [9.0, 1.0], [1.0, 9.0]]])  # 0 beats all; none beats 1
    >>> p = aggregate_binary(scores, pairs)
    >>> bool(p[0, 0] > 0.5 > p[0, 1])
    True
    """
    from scipy.special import expit

    S = np.asarray(answer_scores, dtype=np.float64)
    if S.ndim != 3 or S.shape[-1] != 2 or S.shape[1] != len(pairs):
        raise ValueError(f"answer_scores must have shape (n, {len(pairs)}, 2); got {S.shape}.")
    n_candidates = int(np.max(pairs)) + 1
    s = fit_bradley_terry(expit(S[..., 0] - S[..., 1]), pairs, n_candidates,
                          random_state=random_state)
    return expit(s[:, :-1] - s[:, -1:])


@dataclass(frozen=True)
class Aggregation:
    """One entry of :data:`AGGREGATION_TABLE`.

    Attributes
    ----------
    name : str
        The value of ``LLMMultiLabelClassifier(aggregation=...)``.
    consumes : {"steps", "parsed", "unary", "binary"}
        What it is computed from: the step scores of the greedy decoding
        (``(scores, mask)`` of :func:`pack_steps`), the labels parsed from
        the generated text, or the answer scores of the unary or binary
        breakdown queries (which run their own prompts).
    function : callable
    in_paper : bool
        False for the library's own additions (``mean``).
    official_no_step : {"first", "uniform", None}
        What a text whose generation holds no label step gets under
        ``protocol="official"``: the scores of its first generated position
        (``"first"``, what the library always does), or ``1 / n_labels`` for
        every label as the paper's released code returns for max and mean
        (``"uniform"``); None where steps are not read.
    summary : str

    Examples
    --------
    >>> AGGREGATION_TABLE["max"].consumes, AGGREGATION_TABLE["mean"].in_paper
    ('steps', False)
    """

    name: str
    consumes: str
    function: Callable
    in_paper: bool
    summary: str
    official_no_step: str | None = None

    @property
    def record_kind(self) -> str:
        """The records it reads: ``"steps"`` (the decoding, also for parsed labels) or a
        breakdown's (``"unary"``, ``"binary"``)."""
        return "steps" if self.consumes in ("steps", "parsed") else self.consumes


#: every aggregation the classifier offers, in the order reports list them
AGGREGATION_TABLE: dict[str, Aggregation] = {entry.name: entry for entry in (
    Aggregation("first", "steps", aggregate_first, True,
                "compare-to-none at the first label step", "first"),
    Aggregation("max", "steps", aggregate_max, True,
                "max over label-generation steps (the paper's headline method)", "uniform"),
    Aggregation("mean", "steps", aggregate_mean, False,
                "mean over label-generation steps (the library's addition, not in the paper)",
                "uniform"),
    Aggregation("hard", "parsed", aggregate_hard, True, "the labels the model wrote"),
    Aggregation("unary", "unary", aggregate_unary, True,
                "one 'is label l reasonable?' query per label"),
    Aggregation("binary", "binary", aggregate_binary, True,
                "pairwise 'a or b?' queries and Bradley-Terry scores"),
)}
AGGREGATIONS = tuple(AGGREGATION_TABLE)
#: aggregations computed from step scores
STEP_AGGREGATIONS = {name: entry.function for name, entry in AGGREGATION_TABLE.items()
                     if entry.consumes == "steps"}
#: aggregations that run their own breakdown prompts
BREAKDOWN_AGGREGATIONS = tuple(name for name, entry in AGGREGATION_TABLE.items()
                               if entry.consumes in ("unary", "binary"))


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
