"""The illustrative topic dataset shipped with the package (for the demo and examples)."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

LABELS = ["sports", "weather", "politics", "food", "technology"]

DESCR = """Illustrative multi-label topics (written for sklearn_llm_multilabel).

40 short sentences, each labelled by three annotators (A, B, C) with any
subset of: sports, weather, politics, food, technology (possibly none).
The texts and annotations were written for this project to illustrate
annotator disagreement; they are not a research dataset. Use the real
corpora (MFRC, HS-Brexit, GoEmotions, XED) for any measurement.
"""


def load_illustrative_topics() -> Bunch:
    """Load the illustrative topic dataset with per-annotator label sets.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (list of 40 str), ``target`` (ndarray (40, 5), fraction of
        annotators who chose each label), ``target_gold`` (``target >= 0.5`` as
        0/1), ``label_names``, ``n_annotators`` (ndarray of int), ``ids`` and
        ``DESCR``.

    Examples
    --------
    >>> ds = load_illustrative_topics()
    >>> len(ds.data), ds.target.shape, ds.label_names[:2]
    (40, (40, 5), ['sports', 'weather'])
    """
    path = resources.files("sklearn_llm_multilabel.datasets").joinpath(
        "data/illustrative_topics.csv"
    )
    order: list[str] = []
    texts: dict[str, str] = {}
    votes: dict[str, list[set[str]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for line, row in enumerate(reader, start=2):
            labels = {lab.strip() for lab in row["labels"].split(";") if lab.strip()}
            unknown = labels - set(LABELS)
            if unknown:
                raise ValueError(f"{path}:{line}: unknown labels {sorted(unknown)}.")
            if row["id"] not in texts:
                order.append(row["id"])
                texts[row["id"]] = row["text"]
                votes[row["id"]] = []
            votes[row["id"]].append(labels)
    counts = np.array([[sum(lab in v for v in votes[i]) for lab in LABELS] for i in order], float)
    n_annotators = np.array([len(votes[i]) for i in order])
    target = counts / n_annotators[:, None]
    return Bunch(
        data=[texts[i] for i in order],
        target=target,
        target_gold=(target >= 0.5).astype(int),
        label_names=list(LABELS),
        n_annotators=n_annotators,
        ids=np.array(order),
        DESCR=DESCR,
    )
