"""Targets are matched, checked and never silently reordered (``_validation``)."""


import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline

from sklearn_llm_multilabel import (
    DistributionCalibrator,
)
from sklearn_llm_multilabel.exceptions import (
    ColumnOrderWarning,
    NoLabelStepWarning,
)

from .conftest import LABEL_LISTS, LABELS, TEXTS, make_clf, proportions

pytestmark = pytest.mark.filterwarnings(f"ignore::{NoLabelStepWarning.__module__}.NoLabelStepWarning")




# ------------------------------------------------------------ DataFrame targets
def test_dataframe_columns_are_matched_by_name_not_position(tiny_llama):
    Y = proportions()
    in_order = pd.DataFrame(Y, columns=LABELS)
    shuffled = in_order[["politics", "weather", "sports"]]
    a = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, in_order)
    with pytest.warns(ColumnOrderWarning, match="matched by name"):
        b = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, shuffled)
    assert a.demonstrations_ == b.demonstrations_
    assert a.score(TEXTS, in_order) == b.score(TEXTS, shuffled)
    # a matrix in the other order would be read by position: the demonstrations would differ
    c = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, shuffled.to_numpy())
    assert c.demonstrations_ != a.demonstrations_


def test_dataframe_with_other_names_is_an_error(tiny_llama):
    y = pd.DataFrame(proportions(), columns=["weather", "sports", "law"])
    with pytest.raises(ValueError, match=r"do not match labels=.*missing from y: \['politics'\]"):
        make_clf(tiny_llama, labels=LABELS).fit(TEXTS, y)


def test_calibrator_pairs_named_columns_by_name():
    rng = np.random.default_rng(0)
    H = rng.integers(0, 4, (120, 3)) / 3
    S = pd.DataFrame(np.clip(H + rng.normal(0, 0.1, H.shape), 0.01, 0.99), columns=LABELS)
    y = pd.DataFrame(H, columns=LABELS)
    expected = DistributionCalibrator().fit(S, y)
    shuffled = DistributionCalibrator().fit(S, y[["sports", "politics", "weather"]])
    np.testing.assert_allclose(shuffled.predict_proba(S), expected.predict_proba(S))
    assert list(shuffled.get_feature_names_out()) == LABELS


def test_pipeline_with_pandas_output_keeps_label_names(tiny_llama):
    y = pd.DataFrame(proportions(), columns=LABELS)
    pipe = make_pipeline(make_clf(tiny_llama, labels=LABELS), DistributionCalibrator())
    pipe.set_output(transform="pandas")
    out = pipe.fit(TEXTS, y).transform(TEXTS)
    assert list(out.columns) == LABELS


def test_series_of_label_lists_is_accepted(tiny_llama):
    a = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    b = make_clf(tiny_llama).fit(TEXTS, pd.Series(LABEL_LISTS))
    assert a.demonstrations_ == b.demonstrations_
    assert list(b.label_names_) == sorted(LABELS)


def test_none_inside_label_lists_names_the_row(tiny_llama):
    y = [list(row) for row in LABEL_LISTS]
    y[3] = [None]
    with pytest.raises(ValueError, match=r"y\[3\] contains None.*empty list \[\]"):
        make_clf(tiny_llama).fit(TEXTS, y)


def test_sparse_targets_are_supported(tiny_llama):
    Y = proportions()
    dense = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, Y)
    sparse = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, sp.csr_matrix(Y))
    assert dense.demonstrations_ == sparse.demonstrations_
    cal = DistributionCalibrator().fit(np.clip(Y, 0.05, 0.95), sp.csr_matrix(Y))
    assert cal.predict_proba(np.clip(Y, 0.05, 0.95)).shape == Y.shape


def test_one_column_tables_of_texts_are_read_like_a_list():
    import polars as pl

    from sklearn_llm_multilabel._validation import check_texts

    texts = ["the rain fell", "a late goal", "007"]
    for X in (pd.DataFrame({"text": texts}), pl.DataFrame({"text": texts}),
              np.array(texts, dtype=object).reshape(-1, 1), pl.Series("text", texts)):
        assert check_texts(X) == texts
    with pytest.raises(ValueError, match=r"1-d sequence of texts; got an array of shape \(3, 2\)"):
        check_texts(pl.DataFrame({"a": texts, "b": texts}))
    with pytest.raises(TypeError, match=r"X\[1\] must be a string, got NoneType"):
        check_texts(pl.DataFrame({"text": ["a", None, "b"]}))
