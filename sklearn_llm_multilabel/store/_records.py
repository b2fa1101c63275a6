"""The records of the store: what the engine computes for one text, as plain numpy.

Each record class turns into arrays and JSON metadata (:meth:`to_payload`)
and back (:meth:`from_payload`, which refuses anything a record cannot hold),
so both store layouts keep data, never pickles. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @property
    def nbytes(self) -> int:
        """Bytes of the record's arrays."""
        return (self.position_scores.nbytes + self.generated_ids.nbytes
                + self.step_positions.nbytes + self.step_labels.nbytes
                + self.label_mass.nbytes + self.hidden.nbytes)

    #: every array of a record, with its dtype kind and number of dimensions
    _ARRAY_KINDS = {"position_scores": ("f", 2), "generated_ids": ("i", 1),
                    "step_positions": ("i", 1), "step_labels": ("i", 1), "label_mass": ("f", 1),
                    "hidden": ("f", 1)}
    _ARRAYS = tuple(_ARRAY_KINDS)

    def to_payload(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for the on-disk cache (no pickle)."""
        meta = {"n_valid": self.n_valid, "text": self.text, "parsed": list(self.parsed),
                "unknown": list(self.unknown)}
        return {name: getattr(self, name) for name in self._ARRAYS}, meta

    @classmethod
    def from_payload(cls, arrays: dict[str, np.ndarray], meta: dict, *,
                     check_finite: bool = True) -> StepRecord:
        """Inverse of :meth:`to_payload`; raises ValueError on anything a record cannot hold.

        Checked: every array present with its dtype kind and number of
        dimensions, consistent lengths, step positions within the valid
        positions, step labels within the label columns and not repeated,
        finite scores (``check_finite=False`` when the caller checked the
        values of many records at once), and metadata of the right types.
        """
        _check_arrays(arrays, cls._ARRAY_KINDS)
        scores, ids = arrays["position_scores"], arrays["generated_ids"]
        n_pos = len(ids)
        if scores.shape[0] != n_pos or len(arrays["label_mass"]) != n_pos:
            raise ValueError("inconsistent array lengths")
        if n_pos < 1:
            raise ValueError("a record holds at least one generated position")
        if scores.shape[1] < 2:
            raise ValueError("position_scores needs at least one label column and none")
        n_valid = meta.get("n_valid")
        if not isinstance(n_valid, int) or isinstance(n_valid, bool) or not 0 <= n_valid <= n_pos:
            raise ValueError(f"n_valid={n_valid!r} outside [0, {n_pos}]")
        positions, labels = arrays["step_positions"].tolist(), arrays["step_labels"].tolist()
        if len(positions) != len(labels):
            raise ValueError("step_positions and step_labels differ in length")
        # a few steps per record: plain Python is faster than NumPy reductions here
        if positions and (positions[0] < 0 or positions[-1] >= n_valid
                          or any(b <= a for a, b in zip(positions, positions[1:]))):
            raise ValueError("step positions out of range or not increasing")
        if labels and (min(labels) < 0 or max(labels) >= scores.shape[1]
                       or len(set(labels)) != len(labels)):
            raise ValueError("step labels out of range or repeated")
        for name in ("position_scores", "label_mass", "hidden") if check_finite else ():
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"{name} holds non-finite values")
        text, parsed, unknown = meta.get("text"), meta.get("parsed"), meta.get("unknown")
        if not isinstance(text, str) or not _str_list(parsed) or not _str_list(unknown):
            raise ValueError("metadata text/parsed/unknown of the wrong type")
        return cls(n_valid=n_valid, text=text, parsed=tuple(parsed), unknown=tuple(unknown),
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

    @property
    def nbytes(self) -> int:
        """Bytes of the record's arrays."""
        return self.answer_scores.nbytes

    def to_payload(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for the on-disk cache (no pickle)."""
        return {"answer_scores": self.answer_scores}, {}

    @classmethod
    def from_payload(cls, arrays: dict[str, np.ndarray], meta: dict, *,
                     check_finite: bool = True) -> BreakdownRecord:
        """Inverse of :meth:`to_payload`."""
        _check_arrays(arrays, {"answer_scores": ("f", 2)})
        scores = arrays["answer_scores"]
        if scores.shape[1] != 2:
            raise ValueError(f"answer_scores has shape {scores.shape}; expected (n, 2)")
        if check_finite and not np.isfinite(scores).all():
            raise ValueError("answer_scores holds non-finite values")
        return cls(answer_scores=scores)


@dataclass
class AdapterRecord:
    """A trained LoRA adapter, cached by its content key like step records.

    Attributes
    ----------
    weights : dict of str to ndarray
        The adapter's state dict (peft names), float32.
    losses : ndarray of shape (n_steps,), float64
        The training loss of every optimiser step.
    n_cut : int
        Training prompts that lost their start to the length limit.
    """

    weights: dict
    losses: np.ndarray
    n_cut: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the adapter's weights and losses."""
        return sum(w.nbytes for w in self.weights.values()) + self.losses.nbytes

    _PREFIX = "w_"

    def to_payload(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON metadata for the on-disk cache (no pickle)."""
        arrays = {f"{self._PREFIX}{i}": w for i, w in enumerate(self.weights.values())}
        return {**arrays, "losses": self.losses}, {"names": list(self.weights),
                                                    "n_cut": self.n_cut}

    @classmethod
    def from_payload(cls, arrays: dict[str, np.ndarray], meta: dict, *,
                     check_finite: bool = True) -> AdapterRecord:
        """Inverse of :meth:`to_payload`; raises ValueError on anything an adapter cannot hold."""
        names, n_cut = meta.get("names"), meta.get("n_cut")
        if not _str_list(names) or not names:
            raise ValueError("adapter metadata lacks its tensor names")
        if not isinstance(n_cut, int) or isinstance(n_cut, bool) or n_cut < 0:
            raise ValueError(f"n_cut={n_cut!r} is not a count")
        _check_arrays(arrays, {"losses": ("f", 1),
                               **{f"{cls._PREFIX}{i}": ("f", 2) for i in range(len(names))}})
        weights = {name: arrays[f"{cls._PREFIX}{i}"] for i, name in enumerate(names)}
        if check_finite and not all(np.isfinite(w).all() for w in weights.values()):
            raise ValueError("adapter weights hold non-finite values")
        return cls(weights=weights, losses=arrays["losses"], n_cut=n_cut)


def _check_arrays(arrays: dict, expected: dict[str, tuple[str, int]]) -> None:
    """Every expected array present, with its dtype kind (``"f"``, ``"i"``) and ndim."""
    for name, (kind, ndim) in expected.items():
        value = arrays.get(name)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"missing array {name!r}")
        if value.dtype.kind != kind or value.ndim != ndim:
            raise ValueError(f"{name} has dtype {value.dtype} and {value.ndim} dimensions; "
                             f"expected kind {kind!r} with {ndim}")


def _str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: record classes the on-disk cache can hold, by name
RECORD_TYPES = {cls.__name__: cls for cls in (StepRecord, BreakdownRecord, AdapterRecord)}
