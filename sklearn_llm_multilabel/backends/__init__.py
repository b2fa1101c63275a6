"""Model loading and the step-scoring engine (the only modules that import torch).

Importing this package does not import torch: the names that need it are
loaded on first access.
"""

from importlib import import_module

from ..store._records import StepRecord
from ._base import get_scoring_stats, reset_scoring_stats
from ._specs import DEFAULT_MODEL, MODEL_ALIASES

#: name -> the submodule that defines it (imported, with torch, on first access)
_LAZY = {
    "StepScorer": "_hf",
    "LabelTokens": "_labels",
    "build_label_tokens": "_labels",
    "find_steps": "_labels",
    "LoadedModel": "_load",
    "clear_model_registry": "_load",
    "load_model": "_load",
    "register_model": "_load",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
