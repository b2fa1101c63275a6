"""Demonstrations chosen per text: the nearest training texts by cosine similarity.

Pure functions on unit-norm embeddings (NumPy only); the embeddings come from
``backends._embed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: similarities held at once (queries x pool), about 256 MB of float32
_MAX_BLOCK = 64 * 2**20


def nearest_demonstrations(queries: np.ndarray, pool: np.ndarray, n_shots: int, *,
                           eligible: np.ndarray | None = None,
                           exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Per query, the indices of its ``n_shots`` nearest pool rows, farthest first.

    Similarity is the dot product of unit-norm embeddings (cosine). Ties are
    broken by the lower pool index, so the choice is deterministic. The order
    puts the nearest demonstration last, next to the text it helps with.

    The search is exact. Queries are compared with the pool in blocks of at
    most ``_MAX_BLOCK`` similarities, and each row keeps its ``k`` best by
    partial selection, so memory stays bounded and the time grows linearly
    with the pool (about 19 ms per query against a million candidates on two
    CPU cores, against about 1.2 s for the embedded language model to score
    the text's retrieved prompt: ``benchmarks/retrieval.py``).

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
    chosen = np.zeros((len(queries), k), dtype=int)
    if k == 0 or len(queries) == 0:
        return chosen
    exclude = list(exclude or ())
    step = max(1, _MAX_BLOCK // max(n_pool, 1))
    for start in range(0, len(queries), step):
        sims = queries[start:start + step] @ pool.T
        sims[:, ~allowed] = -np.inf
        for offset, row in enumerate(sims):
            banned = exclude[start + offset] if start + offset < len(exclude) else ()
            if len(banned):
                row[list(banned)] = -np.inf
            best = top_k(row, k)
            chosen[start + offset] = np.where(row[best] == -np.inf, -1, best)
    return chosen[:, ::-1]


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest ``values``, largest first, lower index on ties.

    The same as ``np.argsort(-values, kind="stable")[:k]``, in time linear in
    ``len(values)`` (partial selection, then a sort of the ``k`` chosen).

    Examples
    --------
    >>> top_k(np.array([0.5, 0.9, 0.5, 0.1, 0.5]), 3).tolist()
    [1, 0, 2]
    """
    if k >= len(values):
        candidates = np.arange(len(values))
    else:
        kth = values[np.argpartition(-values, k - 1)[k - 1]]  # the k-th largest value
        above = np.flatnonzero(values > kth)
        tied = np.flatnonzero(values == kth)[: k - len(above)]  # the lowest indices
        candidates = np.concatenate([above, tied])
    return candidates[np.lexsort((candidates, -values[candidates]))]
