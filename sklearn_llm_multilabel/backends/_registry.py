"""The scoring seam: what decides a scorer, and the process-wide scorer of each.

A fitted :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier` describes
the scorer it needs as a :class:`ScorerSpec` (its public
``scorer_spec(kind)``): the prompt's parts, the labels, and the frozen
:class:`EngineOptions`. :func:`get_scorer` builds the scorer of a spec on a
loaded model once per process (its encoded prompt prefix is then shared by
every estimator, clone and thread with the same spec), keyed by the model's
fingerprint, its device and the spec. The estimator, ``scoring.score_texts``,
``distributed.score_dataset`` and its Ray actors all get their scorers here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import _state

#: the kinds of records a scorer produces
KINDS = ("steps", "unary", "binary")


@dataclass(frozen=True)
class EngineOptions:
    """Decoding settings of a scorer: part of its memo key and of its records' fingerprint.

    ``None`` leaves a choice to the protocol (see ``StepScorer``); the last
    four exist for the fidelity benchmark, which switches the released
    code's choices one at a time.
    """

    max_new_tokens: int
    max_text_tokens: int
    protocol: str = "library"
    early_exit: bool | None = None
    decode_queries: int | None = None
    label_variants: str | None = None
    stop_at_newline: bool | None = None
    retokenized_steps: bool | None = None
    official_parse: bool | None = None

    def step_kwargs(self) -> dict:
        """The keyword arguments of ``StepScorer`` that are set (the rest keep its defaults)."""
        skip = ("max_new_tokens", "max_text_tokens")
        return {k: v for k, v in asdict(self).items() if v is not None and k not in skip}


@dataclass(frozen=True)
class ScorerSpec:
    """Everything that decides a scorer, but the model.

    Attributes
    ----------
    kind : {"steps", "unary", "binary"}
    parts : PromptParts or BreakdownParts
        The fitted prompt (frozen, so hashable).
    label_names : tuple of str
    none_label : str
    label_format : str
    answer_lead : str
        What precedes the label list in demonstrations (steps only).
    add_bos : bool or None
        Special tokens before a breakdown prompt (steps read them from ``parts``).
    options : EngineOptions
    """

    kind: str
    parts: object
    label_names: tuple
    none_label: str
    label_format: str
    answer_lead: str
    add_bos: bool | None
    options: EngineOptions

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")


def build_scorer(spec: ScorerSpec, loaded):
    """A new scorer of ``spec`` on ``loaded`` (prefer :func:`get_scorer`, which shares it)."""
    opts = spec.options
    if spec.kind == "steps":
        from ._hf import StepScorer

        return StepScorer(loaded, spec.parts, list(spec.label_names), spec.none_label,
                          spec.label_format, answer_lead=spec.answer_lead,
                          max_new_tokens=opts.max_new_tokens,
                          max_text_tokens=opts.max_text_tokens, **opts.step_kwargs())
    from ._breakdown import BreakdownScorer

    return BreakdownScorer(loaded, spec.parts, opts.max_text_tokens, add_bos=spec.add_bos,
                           protocol=opts.protocol, max_new_tokens=opts.max_new_tokens)


def get_scorer(spec: ScorerSpec, loaded):
    """The process-wide scorer of ``spec`` on ``loaded``, built once (LRU of a few)."""
    key = (loaded.fingerprint, str(loaded.device), spec)
    with _state.LOCK:
        scorer = _state.SCORERS.get(key)
        if scorer is not None:
            _state.SCORERS.move_to_end(key)
            return scorer
    scorer = build_scorer(spec, loaded)  # outside the lock: it may encode the prefix
    with _state.LOCK:
        scorer = _state.SCORERS.setdefault(key, scorer)  # another thread may have built it
        _state.SCORERS.move_to_end(key)
        while len(_state.SCORERS) > _state.MAX_SCORERS:
            _state.SCORERS.popitem(last=False)
    return scorer
