"""Datasets with per-annotator labels, returned as scikit-learn Bunches."""

from ._illustrative import load_illustrative_topics

__all__ = ["load_illustrative_topics"]
