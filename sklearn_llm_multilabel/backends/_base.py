"""The scorer protocol and the counters of model work (plain Python, no torch).

The records a scorer returns live in :mod:`sklearn_llm_multilabel.store`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from .. import _state


def get_scoring_stats() -> dict[str, int]:
    """Counters of model work done in this process.

    Keys: ``"texts_scored"`` (texts decoded by the model), ``"forward_calls"``
    (model forward passes), ``"prefix_encodings"`` (shared prefixes encoded),
    ``"weights_loaded"`` (models whose weights were read from files, or
    built with an adapter merged in), ``"adapters_trained"`` (LoRA adapters
    trained by ``fit``) and
    ``"adapters_reused"`` (fits that found their adapter in memory or
    ``cache_dir`` and trained nothing).

    Examples
    --------
    >>> reset_scoring_stats(); get_scoring_stats()["texts_scored"]
    0
    """
    with _state.LOCK:
        return {k: int(_state.STATS[k])
                for k in ("texts_scored", "forward_calls", "prefix_encodings",
                          "weights_loaded", "adapters_trained", "adapters_reused")}


def reset_scoring_stats() -> None:
    """Set every counter of :func:`get_scoring_stats` to zero.

    Examples
    --------
    >>> reset_scoring_stats(); get_scoring_stats()["forward_calls"]
    0
    """
    with _state.LOCK:
        _state.STATS.clear()


@runtime_checkable
class Scorer(Protocol):
    """What the cache glue (:func:`~sklearn_llm_multilabel._scoring.score_texts`) needs of a scorer.

    Both the step scorer (greedy decoding) and the breakdown scorer (unary and
    binary queries) satisfy it.
    """

    #: the record class the scorer returns and the cache must hold for its keys
    record_type: type

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncated per-text queries (the text-dependent part of the prompt)."""

    def query_key(self, query: str) -> str:
        """Content address of a query's record: 64 hexadecimal digits."""

    def check_record(self, record) -> None:
        """Raise ``ValueError`` when a cached record does not fit this scorer."""

    def score_queries(self, queries: Sequence[str], *, batch_size: int | str = 8,
                      use_prefix_cache: bool = True, on_batch: Callable | None = None,
                      show_progress: bool = False) -> list:
        """One record per query, in order; ``on_batch(indices, records)`` after each batch."""
