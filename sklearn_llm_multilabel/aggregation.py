"""Public aggregation functions (pure numpy): step scores -> per-label probabilities."""

from ._aggregation import (
    AGGREGATIONS,
    EPS,
    aggregate_first,
    aggregate_hard,
    aggregate_max,
    aggregate_mean,
    pack_steps,
    step_distributions,
)

__all__ = [
    "AGGREGATIONS",
    "EPS",
    "aggregate_first",
    "aggregate_hard",
    "aggregate_max",
    "aggregate_mean",
    "pack_steps",
    "step_distributions",
]
