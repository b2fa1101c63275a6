"""Model loading and the step-scoring engine (the only modules that import torch)."""

from ._base import StepRecord, get_scoring_stats, reset_scoring_stats
from ._hf import StepScorer
from ._labels import LabelTokens, build_label_tokens, find_steps
from ._load import (
    DEFAULT_MODEL,
    MODEL_ALIASES,
    LoadedModel,
    clear_model_registry,
    load_model,
    register_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ALIASES",
    "LabelTokens",
    "LoadedModel",
    "StepRecord",
    "StepScorer",
    "build_label_tokens",
    "clear_model_registry",
    "find_steps",
    "get_scoring_stats",
    "load_model",
    "register_model",
    "reset_scoring_stats",
]
