"""Metrics that separate model error from annotator noise.

Annotator proportions are themselves noisy: with ``n`` annotators, an item's
share ``h`` of a label scatters around the rate ``π`` that many annotators
would give. These metrics read the targets' own uncertainty out of the score:

* :func:`excess_nll` is the NLL minus the targets' own entropy, the
  Kullback-Leibler divergence from the annotator distribution (0 is a model
  that reproduces it exactly);
* :func:`debiased_squared_error` removes the part of the squared error that
  the finite number of annotators adds on average, so it estimates
  ``(p − π)²`` rather than ``(p − h)²``;
* :func:`entropy_correlation` asks whether the model is unsure where the
  annotators disagree (Spearman correlation of the two entropies per text).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ._distribution import EPS, _check_pair


def _binary_entropy(x: np.ndarray) -> np.ndarray:
    """``−x ln x − (1 − x) ln(1 − x)`` with ``0 ln 0 = 0``."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -(x * np.log(x) + (1 - x) * np.log1p(-x))
    return np.nan_to_num(terms, nan=0.0)


def excess_nll(y_true, y_proba, *, eps: float = EPS) -> float:
    """Mean over texts of ``Σ_l KL(Bern(H_l) || Bern(p_l))``: the NLL beyond the targets' own
    entropy.

    ``distribution_nll(H, p) = excess_nll(H, p) + mean_i Σ_l h(H_il)``, where
    ``h`` is the binary entropy; 0 means the model gives the annotators'
    proportions. ``p`` is clipped to ``[eps, 1 − eps]`` as in the NLL.

    Examples
    --------
    >>> excess_nll([[0.5, 1.0]], [[0.5, 1.0]]) < 1e-6
    True
    >>> round(excess_nll([[0.5, 0.0]], [[0.25, 0.0]]), 4)  # KL(1/2 || 1/4)
    0.1438
    """
    H, P = _check_pair(y_true, y_proba)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5); got {eps!r}.")
    P = np.clip(P, eps, 1 - eps)
    nll = -(H * np.log(P) + (1 - H) * np.log1p(-P))
    return float((nll - _binary_entropy(H)).sum(axis=1).mean())


def debiased_squared_error(y_true, y_proba, n_annotators) -> float:
    """Mean over texts and labels of ``(p − h)² − h(1 − h)/(n − 1)``.

    With ``n`` annotators, ``h`` is an unbiased estimate of the annotator rate
    ``π`` and ``E[(p − h)²] = (p − π)² + π(1 − π)/n``; ``h(1 − h)/(n − 1)`` is
    an unbiased estimate of the second term, so the result estimates the mean
    of ``(p − π)²``: the squared error against the annotator population, not
    against this sample of it. It can be slightly negative for a good model.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions.
    y_proba : array-like of shape (n_samples, n_labels)
    n_annotators : array-like of shape (n_samples,)
        Annotators per text (the loaders' ``n_annotators``), at least 2.

    Examples
    --------
    >>> debiased_squared_error([[0.5]], [[0.5]], [2])  # (0)² − 0.25 / 1
    -0.25
    >>> debiased_squared_error([[1.0, 0.0]], [[0.75, 0.5]], [4])  # (0.0625 + 0.25) / 2
    0.15625
    """
    H, P = _check_pair(y_true, y_proba)
    n = np.asarray(n_annotators, dtype=float)
    if n.shape != (len(H),):
        raise ValueError(f"n_annotators must give one count per text ({len(H)}); got shape "
                         f"{n.shape}.")
    few = np.flatnonzero(~(n >= 2))
    if len(few):
        raise ValueError(
            f"n_annotators must be at least 2 for every text (one annotator gives no estimate "
            f"of the noise); texts {few[:5].tolist()} have {n[few[:5]].tolist()}. A loader "
            "gives -1 where it does not know: pass the counts, or leave those texts out.")
    return float(((P - H) ** 2 - H * (1 - H) / (n[:, None] - 1)).mean())


def entropy_correlation(y_true, y_proba) -> float:
    """Spearman correlation, over texts, of the annotators' and the model's entropy.

    Each text's entropy is the sum over labels of the binary entropy of its
    proportion (annotators) or probability (model): high where the
    annotators disagree, or the model is unsure. 1 means the model is unsure
    exactly where the annotators disagree.

    Examples
    --------
    >>> entropy_correlation([[0.5], [0.0], [0.25]], [[0.45], [0.1], [0.3]])
    1.0
    """
    H, P = _check_pair(y_true, y_proba)
    a, b = _binary_entropy(H).sum(axis=1), _binary_entropy(P).sum(axis=1)
    if len(H) < 3:
        raise ValueError(f"entropy_correlation needs at least 3 texts; got {len(H)}.")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("entropy_correlation is undefined when the annotators' or the model's "
                         "entropy is the same for every text.")
    return float(spearmanr(a, b).statistic)
