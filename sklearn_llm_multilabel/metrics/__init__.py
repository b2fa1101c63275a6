"""Alignment metrics between label probabilities and annotator distributions."""

from ._bootstrap import mean_interval
from ._distribution import (
    brier_score,
    distribution_l1,
    distribution_nll,
    example_f1,
    expected_calibration_error,
    label_f1,
    per_label_proba,
    perspectivist_error_rate,
    perspectivist_error_rates,
    soft_label_manhattan,
)
from ._noise import debiased_squared_error, entropy_correlation, excess_nll
from ._scorer import ALIGNMENT_METRICS, THRESHOLDED_METRICS, alignment_report, alignment_scorers

__all__ = [
    "ALIGNMENT_METRICS",
    "THRESHOLDED_METRICS",
    "alignment_report",
    "alignment_scorers",
    "brier_score",
    "debiased_squared_error",
    "distribution_l1",
    "distribution_nll",
    "entropy_correlation",
    "example_f1",
    "excess_nll",
    "expected_calibration_error",
    "label_f1",
    "mean_interval",
    "per_label_proba",
    "perspectivist_error_rate",
    "perspectivist_error_rates",
    "soft_label_manhattan",
]
