"""Shared input checks for texts, label names and label targets."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import MultiLabelBinarizer

from ._warnings import warn
from .exceptions import ColumnOrderWarning


def check_texts(X, *, name: str = "X") -> list[str]:
    """Return ``X`` as a list of non-empty strings or raise a clear error.

    Parameters
    ----------
    X : iterable of str
        Texts, or a one-column table of them (a numpy array, a pandas or
        polars DataFrame). A single string is rejected (it would be read
        character by character).
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    texts : list of str
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"{name} must be an iterable of strings (one per text), got a single "
            f"{type(X).__name__}. Wrap it in a list: [{name}]."
        )
    if sp.issparse(X):
        raise TypeError(
            f"Sparse data was passed as {name}, but {name} must be an iterable of strings "
            "(one per text); sparse matrices are not supported."
        )
    shape = getattr(X, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2:  # numpy, pandas, polars, ...
        if shape[1] != 1:
            raise ValueError(
                f"{name} must be a 1-d sequence of texts; got an array of shape {shape}."
            )
        values = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X, dtype=object)
        X = np.asarray(values, dtype=object).ravel()
    if not isinstance(X, Iterable):
        raise TypeError(f"{name} must be an iterable of strings, got {type(X).__name__}.")
    texts = list(X)
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: at least one text is required.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(
                f"{name}[{i}] must be a string, got {type(t).__name__} ({t!r:.60})."
            )
        if not t.strip():
            raise ValueError(f"{name}[{i}] is an empty or whitespace-only text.")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name}[{i}] cannot be encoded as UTF-8 ({exc.reason} at character {exc.start}: "
                f"{t[max(0, exc.start - 10) : exc.start + 10]!r}); clean it first, e.g. with "
                "text.encode('utf-8', 'replace').decode()."
            ) from None
    return texts


def check_label_names(labels: Sequence[str], *, none_label: str, separator: str | None) -> list[str]:
    """Validate label names: non-empty unique strings that the prompt format can carry.

    Parameters
    ----------
    labels : sequence of str
    none_label : str
        Word written for the empty label set; it may not also be a label.
    separator : str or None
        Separator of the label format (``","`` for the comma format); labels
        may not contain it.

    Returns
    -------
    labels : list of str
    """
    if isinstance(labels, str):
        raise TypeError("labels must be a list of label names, got a single string.")
    labels = list(labels)
    if len(labels) == 0:
        raise ValueError("labels is empty: at least one label name is required.")
    seen: dict[str, str] = {}
    for lab in labels:
        if not isinstance(lab, str) or not lab.strip():
            raise ValueError(f"Every label must be a non-empty string; got {lab!r}.")
        if lab != lab.strip():
            raise ValueError(f"Label {lab!r} has leading or trailing whitespace.")
        if "\n" in lab:
            raise ValueError(f"Label {lab!r} contains a newline, which ends a generation.")
        if separator is not None and separator in lab:
            raise ValueError(
                f"Label {lab!r} contains the label separator {separator!r}; rename the "
                "label or use label_format='json'."
            )
        if '"' in lab:
            raise ValueError(f"Label {lab!r} contains a double quote, which the formats cannot carry.")
        key = lab.lower()
        if key == none_label.lower():
            raise ValueError(
                f"Label {lab!r} equals the empty-set word none_label={none_label!r}; "
                "choose another none_label."
            )
        if key in seen:
            raise ValueError(
                f"Duplicate label {lab!r} (labels are matched case-insensitively; "
                f"{seen[key]!r} is already present)."
            )
        seen[key] = lab
    return labels


_ENCODING_METHODS = ("predict_proba", "decision_function", "predict_log_proba")


def check_not_label_encoded() -> None:
    """Refuse targets that ``cross_val_predict`` has label-encoded.

    ``cross_val_predict(..., method="predict_proba")`` label-encodes every
    column of ``y`` before ``fit``: annotator proportions such as {0, 1/3}
    silently become {0, 1}. Nothing in the encoded array shows it, so this
    looks for that call on the stack and raises instead.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if (frame.f_code.co_name == "_fit_and_predict"
                    and frame.f_globals.get("__name__", "").startswith("sklearn.model_selection")
                    and frame.f_locals.get("method") in _ENCODING_METHODS):
                raise ValueError(
                    f"cross_val_predict(method={frame.f_locals['method']!r}) label-encodes y, "
                    "which turns annotator proportions into class indices. Use "
                    "sklearn_llm_multilabel.model_selection.cross_val_predict_proba(estimator, "
                    "X, y, cv=...) for out-of-fold probabilities (same folds, y untouched), "
                    "or cross_val_predict(..., method='predict') for 0/1 labels."
                )
            frame = frame.f_back
    finally:
        del frame


def check_proportions(y, n_samples: int | None = None, *, name: str = "y") -> np.ndarray:
    """``y`` as a float (n, L) matrix of 0/1 labels or proportions in [0, 1]."""
    if y is None:
        raise ValueError(
            f"requires y to be passed, but the target {name} is None: pass annotator "
            "proportions or 0/1 labels of shape (n_samples, n_labels)."
        )
    if sp.issparse(y):
        y = y.toarray()  # label matrices are (n_samples, n_labels): small
    Y = np.asarray(y)
    if Y.dtype == object:
        raise TypeError(f"{name} must be a numeric matrix or a list of label lists.")
    if Y.ndim != 2:
        raise ValueError(
            f"{name} must be 2-d (n_samples, n_labels) for multi-label targets; got shape "
            f"{Y.shape}."
        )
    if n_samples is not None and Y.shape[0] != n_samples:
        raise ValueError(f"{name} has {Y.shape[0]} rows but X has {n_samples} texts.")
    Y = Y.astype(float)
    if not np.all(np.isfinite(Y)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if Y.size and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(
            f"{name} values must be 0/1 indicators or proportions in [0, 1]; got values in "
            f"[{Y.min():g}, {Y.max():g}]."
        )
    return Y


_COLLECTIONS = (list, tuple, set, frozenset)


def _as_rows(y):
    """``y`` as a list of rows when it is a 1-d sequence of label collections, else None.

    Accepts a list, a pandas Series or a 1-d object array whose items are
    lists, tuples or sets.
    """
    if isinstance(y, (str, bytes)) or sp.issparse(y):
        return None
    if hasattr(y, "shape"):
        if getattr(y, "ndim", None) != 1 or getattr(getattr(y, "dtype", None), "kind", "") != "O":
            return None
    rows = list(y)
    if not rows or not all(isinstance(r, _COLLECTIONS) for r in rows):
        return None
    return rows


def _is_label_lists(y) -> bool:
    """True when ``y`` is a sequence of label-name collections (or all empty)."""
    rows = _as_rows(y)
    if rows is None:
        return False
    values = [v for r in rows for v in r]
    return not values or any(isinstance(v, str) for v in values) or any(v is None for v in values)


def _match_columns_by_name(y, labels: Sequence[str]):
    """Reorder a DataFrame ``y`` so its columns follow ``labels`` (matched by name)."""
    columns = list(y.columns)
    names = [str(c) for c in columns]
    labels = list(labels)
    if sorted(names) != sorted(labels):
        missing = [n for n in labels if n not in names]
        extra = [n for n in names if n not in labels]
        raise ValueError(
            f"y is a DataFrame whose columns {names} do not match labels={labels}: columns are "
            f"matched by name (missing from y: {missing}; not in labels: {extra}). Rename the "
            "columns, or select them with y[labels]."
        )
    if names != labels:
        warn(
            f"y's columns {names} are in another order than labels={labels}; they were matched "
            "by name, and predict_proba's columns follow labels. Later steps of a Pipeline and "
            "metrics receive y in its own column order: pass y[labels] to keep them aligned.",
            ColumnOrderWarning,
        )
    by_name = dict(zip(names, columns))
    return y[[by_name[n] for n in labels]]


def align_target_columns(y, X):
    """Reorder a DataFrame ``y`` to the column names of a DataFrame ``X`` when both name the same labels.

    A per-label calibrator pairs column ``j`` of ``X`` with column ``j`` of
    ``y``; when both carry names, pair them by name instead.
    """
    if not (hasattr(y, "columns") and hasattr(X, "columns")):
        return y
    x_names, y_names = [str(c) for c in X.columns], [str(c) for c in y.columns]
    if x_names == y_names or sorted(x_names) != sorted(y_names):
        return y
    by_name = dict(zip(y_names, y.columns))
    return y[[by_name[n] for n in x_names]]


def check_targets(y, n_samples: int, labels: Sequence[str] | None):
    """Turn any supported ``y`` into (proportions, label names).

    ``y`` can be a 0/1 indicator matrix, a matrix of annotator proportions in
    [0, 1], or a list of label lists (label names).

    Returns
    -------
    Y : ndarray of shape (n_samples, n_labels), float
        Proportions (0/1 for indicator input).
    label_names : list of str
    """
    if y is None:
        raise ValueError("y is required: a 0/1 matrix, annotator proportions or label lists.")
    is_label_lists = _is_label_lists(y)
    if is_label_lists:
        y = _as_rows(y)
        if len(y) != n_samples:
            raise ValueError(f"y has {len(y)} label lists but X has {n_samples} texts.")
        for i, row in enumerate(y):
            for v in row:
                if v is None:
                    raise ValueError(
                        f"y[{i}] contains None; label lists must hold label names. Write an "
                        "empty list [] for a text with no label."
                    )
                if not isinstance(v, str):
                    raise TypeError(f"y[{i}] contains {v!r}; label lists must hold label names.")
        if labels is None:
            names = sorted({v for row in y for v in row})
            if not names:
                raise ValueError(
                    "y has no label at all and labels=None: pass labels=[...] to name them."
                )
        else:
            names = list(labels)
            unknown = sorted({v for row in y for v in row} - set(names))
            if unknown:
                raise ValueError(f"y contains labels not in labels={names}: {unknown}.")
        mlb = MultiLabelBinarizer(classes=names)
        Y = mlb.fit_transform([list(row) for row in y]).astype(float)
        return Y, names

    if hasattr(y, "columns"):  # a DataFrame names its columns: match them by name
        if labels is None:
            labels = [str(c) for c in y.columns]
        else:
            y = _match_columns_by_name(y, labels)
    Y = check_proportions(y, n_samples)
    if labels is None:
        raise ValueError(
            "labels=None but y is a matrix: the LLM needs label names. Pass "
            "labels=['name1', 'name2', ...] with one name per column of y."
        )
    names = list(labels)
    if len(names) != Y.shape[1]:
        raise ValueError(f"y has {Y.shape[1]} columns but labels has {len(names)} names.")
    return Y, names


def check_threshold(threshold: object, n_labels: int) -> np.ndarray:
    """A decision threshold: a float, or one per label, each in the open interval (0, 1).

    Examples
    --------
    >>> check_threshold([0.3, 0.6], 2).tolist()
    [0.3, 0.6]
    """
    values = np.asarray(threshold, dtype=float)
    if values.ndim == 1 and values.shape != (n_labels,):
        raise ValueError(
            f"threshold must be a float or an array of shape ({n_labels},), one per label; "
            f"got shape {values.shape}."
        )
    if values.ndim > 1 or not np.all((values > 0) & (values < 1)):
        raise ValueError(
            f"threshold values must lie in the open interval (0, 1); got {threshold!r}."
        )
    return values


def text_multilabel_tags(tags):
    """The scikit-learn tags of an estimator that takes texts and multi-label soft targets."""
    tags.input_tags.two_d_array = False
    tags.input_tags.string = True
    tags.target_tags.required = True
    tags.target_tags.multi_output = True
    tags.target_tags.single_output = False
    tags.classifier_tags.multi_label = True
    return tags


def missing_annotator_id(annotator_ids) -> tuple[int, int] | None:
    """``(text, position)`` of the first missing annotator id (None, NaN or blank), or None.

    A missing id would otherwise become one "annotator" named ``'None'`` or
    ``'nan'`` that pools every unnamed annotator's labels.

    Examples
    --------
    >>> missing_annotator_id([["a1", "a2"], ["a1", None]])
    (1, 1)
    >>> missing_annotator_id([["a1"], ["a2"]]) is None
    True
    """
    for i, ids in enumerate(annotator_ids):
        for j, value in enumerate(ids):
            if (value is None or (isinstance(value, float) and value != value)
                    or (isinstance(value, str) and not value.strip())):
                return i, j
    return None
