"""What the engine returns for one text: plain numpy, no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _state


def get_scoring_stats() -> dict[str, int]:
    """Counters of model work done in this process.

    Keys: ``"texts_scored"`` (texts decoded by the model), ``"forward_calls"``
    (model forward passes), ``"prefix_encodings"`` (shared prefixes encoded).

    Examples
    --------
    >>> reset_scoring_stats(); get_scoring_stats()["texts_scored"]
    0
    """
    with _state.LOCK:
        return {k: int(_state.STATS[k])
                for k in ("texts_scored", "forward_calls", "prefix_encodings")}


def reset_scoring_stats() -> None:
    """Set every counter of :func:`get_scoring_stats` to zero.

    Examples
    --------
    >>> reset_scoring_stats(); get_scoring_stats()["forward_calls"]
    0
    """
    with _state.LOCK:
        _state.STATS.clear()


@dataclass
class StepRecord:
    """One text's greedy decoding, as recorded by the engine.

    Attributes
    ----------
    position_scores : ndarray of shape (n_positions, L + 1), float32
        Label scores ``s(l)`` (max logit over first-token variants) at every
        generated position, including the position that stopped decoding; the
        last column is the none word.
    generated_ids : ndarray of shape (n_positions,), int64
    n_valid : int
        Positions before the stop (newline, example prefix or end token).
    step_positions : ndarray of shape (n_steps,), int64
        Label-generation steps (indices into the positions).
    step_labels : ndarray of shape (n_steps,), int64
        Label index (``L`` = none) that each step starts.
    label_mass : ndarray of shape (n_positions,), float32
        Total next-token probability on label-variant tokens at each position.
    hidden : ndarray of shape (hidden_size,), float32
        Last-layer hidden state at the position that predicts the first label
        step (the first generated position when there is no step).
    text : str
        Generated text up to the stop.
    parsed : tuple of str
        Known labels parsed from ``text``.
    unknown : tuple of str
        Parsed items that are not labels.
    """

    position_scores: np.ndarray
    generated_ids: np.ndarray
    n_valid: int
    step_positions: np.ndarray
    step_labels: np.ndarray
    label_mass: np.ndarray
    hidden: np.ndarray
    text: str
    parsed: tuple[str, ...]
    unknown: tuple[str, ...]

    _ARRAYS = ("position_scores", "generated_ids", "step_positions", "step_labels", "label_mass",
               "hidden")

    def to_payload(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for the on-disk cache (no pickle)."""
        meta = {"n_valid": self.n_valid, "text": self.text, "parsed": list(self.parsed),
                "unknown": list(self.unknown)}
        return {name: getattr(self, name) for name in self._ARRAYS}, meta

    @classmethod
    def from_payload(cls, arrays: dict[str, np.ndarray], meta: dict) -> StepRecord:
        """Inverse of :meth:`to_payload`; raises ValueError on inconsistent data."""
        n_pos = len(arrays["generated_ids"])
        if arrays["position_scores"].shape[0] != n_pos or len(arrays["label_mass"]) != n_pos:
            raise ValueError("inconsistent array lengths")
        return cls(n_valid=int(meta["n_valid"]), text=str(meta["text"]),
                   parsed=tuple(meta["parsed"]), unknown=tuple(meta["unknown"]),
                   **{name: arrays[name] for name in cls._ARRAYS})

    @property
    def has_steps(self) -> bool:
        """Whether the generation contained at least one label step."""
        return len(self.step_positions) > 0

    @property
    def step_scores(self) -> np.ndarray:
        """``(n_steps, L + 1)`` scores at the steps; the first position when there is none."""
        if self.has_steps:
            return self.position_scores[self.step_positions]
        return self.position_scores[:1]


@dataclass
class BreakdownRecord:
    """One text's unary or binary breakdown queries.

    Attributes
    ----------
    answer_scores : ndarray of shape (n_queries, 2), float32
        Scores (max logit over variants) of the two answers at the end of each
        query: (reasonable, unreasonable) for unary, (a, b) for binary.
    """

    answer_scores: np.ndarray

    def to_payload(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for the on-disk cache (no pickle)."""
        return {"answer_scores": self.answer_scores}, {}

    @classmethod
    def from_payload(cls, arrays: dict[str, np.ndarray], meta: dict) -> BreakdownRecord:
        """Inverse of :meth:`to_payload`."""
        scores = arrays["answer_scores"]
        if scores.ndim != 2 or scores.shape[1] != 2:
            raise ValueError(f"answer_scores has shape {scores.shape}; expected (n, 2)")
        return cls(answer_scores=scores)


#: record classes the on-disk cache can hold, by name
RECORD_TYPES = {cls.__name__: cls for cls in (StepRecord, BreakdownRecord)}
