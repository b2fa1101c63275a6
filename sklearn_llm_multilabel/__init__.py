"""Large language models as scikit-learn multi-label classifiers.

Label probabilities come from the model's per-step label distributions
(max over label-generation steps by default), cached below aggregation.

The public names load on first use (PEP 562), so ``import
sklearn_llm_multilabel`` and ``sklml --help`` import none of torch,
transformers, scikit-learn, SciPy, pandas or pyarrow.
"""

from importlib import import_module

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "ConstantPriorClassifier": "._prior",
    "DistributionCalibrator": "._calibration",
    "EncoderMultiLabelClassifier": "._encoder",
    "LLMHiddenStateFeatures": "._features",
    "LLMMultiLabelClassifier": "._classifier",
    "PAPER_PROMPTS": "._prompts",
    "clear_memory_cache": ".store._files",
    "get_scoring_stats": ".backends._base",
    "reset_scoring_stats": ".backends._base",
    "load_model": ".backends._load",  # imports torch
    "register_model": ".backends._load",  # imports torch
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
