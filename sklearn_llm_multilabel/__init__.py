"""Large language models as scikit-learn multi-label classifiers.

Label probabilities come from the model's per-step label distributions
(max over label-generation steps by default), cached below aggregation.
"""

from ._calibration import DistributionCalibrator
from ._classifier import LLMMultiLabelClassifier
from ._encoder import EncoderMultiLabelClassifier
from ._features import LLMHiddenStateFeatures
from ._prompts import PAPER_PROMPTS
from .backends import get_scoring_stats, reset_scoring_stats
from .store._files import clear_memory_cache

__version__ = "0.1.0"

__all__ = [
    "DistributionCalibrator",
    "EncoderMultiLabelClassifier",
    "LLMHiddenStateFeatures",
    "LLMMultiLabelClassifier",
    "PAPER_PROMPTS",
    "__version__",
    "clear_memory_cache",
    "get_scoring_stats",
    "load_model",
    "register_model",
    "reset_scoring_stats",
]


def __getattr__(name: str):
    # model loading imports torch: only when it is first used
    if name in ("load_model", "register_model"):
        from .backends import _load

        return getattr(_load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
