"""Percentile-bootstrap intervals over texts, for one method and paired between two."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn import config_context
from sklearn.utils import check_random_state


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
