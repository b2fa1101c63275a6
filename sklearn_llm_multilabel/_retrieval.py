"""Demonstrations chosen per text: the nearest training texts by cosine similarity.

Pure functions on unit-norm embeddings (NumPy only); the embeddings come from
``backends._embed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nearest_demonstrations(queries: np.ndarray, pool: np.ndarray, n_shots: int, *,
                           eligible: np.ndarray | None = None,
                           exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Per query, the indices of its ``n_shots`` nearest pool rows, farthest first.

    Similarity is the dot product of unit-norm embeddings (cosine). Ties are
    broken by the lower pool index, so the choice is deterministic. The order
    puts the nearest demonstration last, next to the text it helps with.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, d)
    pool : ndarray of shape (n_pool, d)
    n_shots : int
    eligible : ndarray of bool, shape (n_pool,), or None
        Pool rows that may be chosen (all when None).
    exclude : sequence of sequences of int, or None
        Per query, pool rows it may not get (the query itself, when it is a
        training text: otherwise its own labels would be shown to the model).

    Returns
    -------
    indices : ndarray of int, shape (n_queries, k)
        ``k = min(n_shots, eligible rows)``; with exclusions a query may have
        fewer candidates, and then gets ``-1`` in the first columns (dropped by
        the caller).

    Examples
    --------
    >>> pool = np.eye(3)
    >>> q = np.array([[0.9, 0.1, 0.0]]) / np.linalg.norm([0.9, 0.1, 0.0])
    >>> nearest_demonstrations(q, pool, 2).tolist()
    [[1, 0]]
    >>> nearest_demonstrations(q, pool, 2, exclude=[[0]]).tolist()
    [[2, 1]]
    """
    queries = np.asarray(queries, dtype=np.float32)
    pool = np.asarray(pool, dtype=np.float32)
    n_pool = len(pool)
    allowed = np.ones(n_pool, dtype=bool) if eligible is None else np.asarray(eligible, bool)
    k = int(min(n_shots, allowed.sum()))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), k), dtype=int)
    sims = queries @ pool.T
    sims[:, ~allowed] = -np.inf
    for row, banned in enumerate(exclude or ()):
        if len(banned):
            sims[row, list(banned)] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # nearest first, low index on ties
    chosen = np.where(np.take_along_axis(sims, order, axis=1) == -np.inf, -1, order)
    return chosen[:, ::-1]
