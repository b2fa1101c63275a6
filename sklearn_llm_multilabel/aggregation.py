"""Public aggregation functions (pure numpy): step scores -> per-label probabilities.

Every aggregation of :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier`
is listed in :data:`AGGREGATION_TABLE` (name, what it consumes, function,
whether it is the paper's); this module exports the function of each entry.
"""

from ._aggregation import (
    AGGREGATION_TABLE,
    AGGREGATIONS,
    EPS,
    Aggregation,
    aggregate_binary,
    aggregate_first,
    aggregate_hard,
    aggregate_max,
    aggregate_mean,
    aggregate_unary,
    fit_bradley_terry,
    pack_steps,
    step_distributions,
)

__all__ = [
    "AGGREGATIONS",
    "AGGREGATION_TABLE",
    "EPS",
    "Aggregation",
    "aggregate_binary",
    "aggregate_first",
    "aggregate_hard",
    "aggregate_max",
    "aggregate_mean",
    "aggregate_unary",
    "fit_bradley_terry",
    "pack_steps",
    "step_distributions",
]
