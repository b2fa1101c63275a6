"""Choose, order and rename the labels of a dataset Bunch (columns, not rows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.utils import Bunch


def select_labels(bunch: Bunch, label_names: Sequence[str], *, fill_missing: bool = False,
                  source: str = "the dataset") -> Bunch:
    """The dataset restricted to (and ordered as) ``label_names``.

    ``target[:, l]`` stays the share of each item's annotators that chose
    label ``l``: choosing a subset of labels does not renormalise the others.
    Per-annotator label sets keep only the chosen labels.

    Parameters
    ----------
    bunch : Bunch
        A dataset as the loaders return it.
    label_names : sequence of str
        The labels to keep, in the order wanted. Each must be one of the
        dataset's labels, unless ``fill_missing``.
    fill_missing : bool, default=False
        Give a label the dataset does not have a column of zeros (no annotator
        chose it), instead of raising. Used to align a test file whose labels
        were read from its rows to the training file's label set.
    source : str, default="the dataset"
        How the errors name the data (a file name).

    Returns
    -------
    Bunch

    Raises
    ------
    ValueError
        A label that is not the dataset's (naming it and the dataset's labels),
        or a label named twice.

    Examples
    --------
    >>> from sklearn_llm_multilabel.datasets import make_bunch
    >>> ds = make_bunch(["a", "b"], [[1.0, 0.5, 0.0], [0.0, 0.25, 1.0]], ["x", "y", "z"])
    >>> small = select_labels(ds, ["z", "x"])
    >>> small.label_names, small.target.tolist()
    (['z', 'x'], [[0.0, 1.0], [1.0, 0.0]])
    """
    names = list(label_names)
    if not names:
        raise ValueError(f"select at least one label of {source}.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"label(s) {repeated} named more than once.")
    have = list(bunch.label_names)
    unknown = [n for n in names if n not in have]
    if unknown and not fill_missing:
        raise ValueError(f"label(s) {unknown} are not labels of {source}; its labels are "
                         f"{', '.join(have)}.")
    n = len(bunch.data)

    def columns(matrix: np.ndarray) -> np.ndarray:
        return np.column_stack([matrix[:, have.index(name)] if name in have
                                else np.zeros(n, dtype=matrix.dtype) for name in names]
                               ) if n else np.zeros((0, len(names)), dtype=matrix.dtype)

    sets = bunch.get("annotator_labels")
    keep = set(names)
    return Bunch(**{
        **bunch,
        "target": columns(np.asarray(bunch.target)),
        "target_gold": columns(np.asarray(bunch.target_gold)),
        "label_names": names,
        "annotator_labels": None if sets is None else [
            [sorted((label for label in one if label in keep), key=names.index) for one in item]
            for item in sets],
    })


def rename_labels(bunch: Bunch, mapping: Mapping[str, str], *,
                  source: str = "the dataset") -> Bunch:
    """The dataset with labels renamed (``{old: new}``), in the same order.

    Useful when two label names share their first token: the model's first
    label-generation step cannot tell them apart.

    Raises
    ------
    ValueError
        An old name that is not a label, or a new name that collides with
        another label.

    Examples
    --------
    >>> from sklearn_llm_multilabel.datasets import make_bunch
    >>> ds = make_bunch(["a"], [[1.0, 0.0]], ["thin_care", "thin_purity"])
    >>> rename_labels(ds, {"thin_purity": "purity"}).label_names
    ['thin_care', 'purity']
    """
    have = list(bunch.label_names)
    unknown = [old for old in mapping if old not in have]
    if unknown:
        raise ValueError(f"cannot rename {unknown}: not labels of {source}; its labels are "
                         f"{', '.join(have)}.")
    names = [mapping.get(name, name) for name in have]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"renaming gives label(s) {repeated} twice.")
    sets = bunch.get("annotator_labels")
    return Bunch(**{
        **bunch,
        "label_names": names,
        "annotator_labels": None if sets is None else [
            [[mapping.get(label, label) for label in one] for one in item] for item in sets],
    })
