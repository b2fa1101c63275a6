"""Alignment metrics between label probabilities and annotator distributions."""

from ._distribution import distribution_l1, distribution_nll, example_f1

__all__ = ["distribution_l1", "distribution_nll", "example_f1"]
