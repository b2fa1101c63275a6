"""Datasets with per-annotator labels, returned as scikit-learn Bunches."""

from ._base import (
    get_data_home,
    load_annotations,
    load_counts,
    load_proportions,
    make_bunch,
    subset,
    train_test_split_bunch,
)
from ._illustrative import load_illustrative_topics
from ._labels import rename_labels, select_labels
from ._lewidi2025 import format_fields, load_lewidi2025
from ._shared import (
    GOEMOTIONS_CLUSTERS,
    HS_BREXIT_LABELS,
    MFRC_LABELS,
    XED_LABELS,
    load_goemotions,
    load_hs_brexit,
    load_lewidi,
    load_mfrc,
    load_xed,
)

__all__ = [
    "GOEMOTIONS_CLUSTERS",
    "HS_BREXIT_LABELS",
    "MFRC_LABELS",
    "XED_LABELS",
    "format_fields",
    "get_data_home",
    "load_annotations",
    "load_counts",
    "load_goemotions",
    "load_hs_brexit",
    "load_illustrative_topics",
    "load_lewidi",
    "load_lewidi2025",
    "load_mfrc",
    "load_proportions",
    "load_xed",
    "make_bunch",
    "rename_labels",
    "select_labels",
    "subset",
    "train_test_split_bunch",
]
