"""Percentile-bootstrap intervals over texts, for one method and paired between two."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn import config_context
from sklearn.utils import check_random_state

#: fewest texts a bootstrap interval is drawn from (fewer: no interval, and a reason)
MIN_TEXTS = 10
#: fewest resamples for a 95% percentile interval (fewer: no interval, and a reason)
MIN_RESAMPLES = 200
#: most resamples accepted
MAX_RESAMPLES = 100_000
#: most resampled row indices held at once (resamples × texts; 8 bytes each: 1.6 GB)
MAX_DRAWN = 2 * 10**8


def check_n_bootstrap(n_bootstrap: int, n_samples: int | None = None) -> None:
    """Raise ValueError for a number of resamples that is negative, above
    :data:`MAX_RESAMPLES`, or that would draw more than :data:`MAX_DRAWN` indices for
    ``n_samples`` texts (checked before any work)."""
    if n_bootstrap < 0 or n_bootstrap > MAX_RESAMPLES:
        raise ValueError(f"n_bootstrap must be 0 (no intervals) or at most {MAX_RESAMPLES} "
                         f"resamples; got {n_bootstrap}.")
    if n_samples is not None and n_bootstrap * n_samples > MAX_DRAWN:
        raise ValueError(f"n_bootstrap={n_bootstrap} resamples of {n_samples} texts would draw "
                         f"{n_bootstrap * n_samples:,} indices (at most {MAX_DRAWN:,}); use at "
                         f"most {MAX_DRAWN // n_samples} resamples.")


def interval_refusal(n_samples: int, n_bootstrap: int) -> str | None:
    """Why ``n_bootstrap`` resamples of ``n_samples`` texts give no interval, or None.

    Examples
    --------
    >>> interval_refusal(1, 1000)
    'no intervals: 1 text is too few to resample (at least 10)'
    >>> interval_refusal(50, 1000) is None
    True
    """
    if n_bootstrap == 0:
        return None
    if n_samples < MIN_TEXTS:
        return (f"no intervals: {n_samples} text{'s are' if n_samples != 1 else ' is'} too few "
                f"to resample (at least {MIN_TEXTS})")
    if n_bootstrap < MIN_RESAMPLES:
        return (f"no intervals: {n_bootstrap} resample{'s are' if n_bootstrap != 1 else ' is'} "
                f"too few for a percentile interval (at least {MIN_RESAMPLES})")
    return None


def bootstrap_indices(n_samples: int, n_bootstrap: int, random_state=None) -> np.ndarray:
    """``(n_bootstrap, n_samples)`` row indices drawn with replacement.

    Every method scored on the same draws gives paired intervals: the
    difference of two methods is computed on the same resampled texts.

    Examples
    --------
    >>> bootstrap_indices(4, 2, random_state=0).shape
    (2, 4)
    """
    rng = check_random_state(random_state)
    return rng.randint(0, n_samples, size=(n_bootstrap, n_samples))


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of ``values``: ``(low, high)`` percentiles.

    Examples
    --------
    >>> percentile_interval(np.arange(101.0), 0.95)
    (2.5, 97.5)
    """
    tail = round(50 * (1 - confidence), 12)  # 0.95 -> 2.5, not 2.5000000000000018
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_metric_values(y_true: np.ndarray, y_proba: np.ndarray,
                            metrics: Mapping[str, Callable], indices: np.ndarray
                            ) -> dict[str, np.ndarray]:
    """``metric -> (n_bootstrap,)`` values of each metric on each resample of the rows."""
    H, P = np.asarray(y_true, dtype=float), np.asarray(y_proba, dtype=float)
    with config_context(skip_parameter_validation=True):  # checked once by the caller
        return {name: np.array([func(H[rows], P[rows]) for rows in indices])
                for name, func in metrics.items()}


def mean_interval(values, *, n_bootstrap: int = 1000, confidence: float = 0.95,
                  random_state=None) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of per-item ``values`` (for a metric that is
    a mean over items, such as :func:`~sklearn_llm_multilabel.metrics.perspectivist_error_rates`).

    Returns None, with the reason in a warning, where :func:`interval_refusal` refuses
    (fewer than 10 items or 200 resamples). Items resampled with the same ``random_state``
    and count are the resamples of :func:`~sklearn_llm_multilabel.metrics.alignment_report`
    (paired).

    Examples
    --------
    >>> low, high = mean_interval([0.0, 1.0] * 10, random_state=0)
    >>> bool(0.2 < low < 0.5 < high < 0.8)
    True
    """
    import warnings

    values = np.asarray(values, dtype=float)
    check_n_bootstrap(n_bootstrap, len(values))
    refusal = interval_refusal(len(values), n_bootstrap)
    if refusal or not n_bootstrap:
        if refusal:
            warnings.warn(f"mean_interval: {refusal}.", UserWarning, stacklevel=2)
        return None
    return percentile_interval(bootstrap_means(values, n_bootstrap, random_state), confidence)


def bootstrap_means(values, n_bootstrap: int, random_state=None) -> np.ndarray:
    """``(n_bootstrap,)`` means of per-item ``values`` over the resamples of
    :func:`bootstrap_indices` (the same resamples for the same count and seed: paired).

    Examples
    --------
    >>> bootstrap_means([1.0, 1.0, 1.0], 4, random_state=0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    values = np.asarray(values, dtype=float)
    return values[bootstrap_indices(len(values), n_bootstrap, random_state)].mean(axis=1)
