"""Texts are read exactly as files spell them: strings, never inferred types."""

import csv
import warnings

import pytest

from sklearn_llm_multilabel._textfile import read_texts
from sklearn_llm_multilabel.exceptions import DatasetFormatError

from .conftest import predict_from_store, saved_checkpoint_estimator

SPELLINGS = ["007", "1e5", "3.10", "None", "NaN", "true", " padded "]


def write_csv(path, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_delimited_texts_are_read_as_written(tmp_path, suffix, delimiter):
    path = write_csv(tmp_path / f"t{suffix}", [["id", "text"], *[[i, t] for i, t in
                                                                  enumerate(SPELLINGS)]],
                     delimiter)
    assert read_texts(path) == (SPELLINGS, 0)


def test_missing_or_empty_texts_are_errors_naming_the_row_or_skipped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,text\n1,hello\n2,\n3\n4,world\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"t\.csv:3: the text is an empty text; fix it, "
                                                 r"or skip such rows \(skip_invalid=True"):
        read_texts(path)
    assert read_texts(path, skip_invalid=True) == (["hello", "world"], 2)
    with pytest.raises(ValueError, match=r"no column 'body'"):
        read_texts(path, "body")
    with pytest.raises(ValueError, match="expected a .parquet, .csv or .tsv file"):
        read_texts(path.rename(tmp_path / "t.json"))


def test_parquet_text_column_must_hold_strings(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": SPELLINGS}), good)
    assert read_texts(good) == (SPELLINGS, 0)
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [7, 100000]}), numbers)
    with pytest.raises(DatasetFormatError, match=r"column 'text' holds int64 values, not strings"):
        read_texts(numbers)
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"text": ["a", None, "b"]}), nulls)
    with pytest.raises(DatasetFormatError, match=r"nulls\.parquet: row 1: the text is a missing "
                                                 "value"):
        read_texts(nulls)
    assert read_texts(nulls, skip_invalid=True) == (["a", "b"], 1)


def test_sklml_score_stores_texts_as_written_and_predict_finds_them(tiny_llama, tmp_path,
                                                                    capsys):
    pytest.importorskip("pyarrow")
    from sklearn_llm_multilabel.cli import main
    from sklearn_llm_multilabel.persistence import save_estimator

    clf = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt")
    save_estimator(clf, tmp_path / "est.skops")
    texts = ["007", "1e5", "3.10", "rain 2.50"]
    source = write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    store = tmp_path / "scores"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["score", "--estimator", str(tmp_path / "est.skops"), "--input", str(source),
                     "--output", str(store), "--quiet"]) == 0
    rows = predict_from_store(tmp_path / "est.skops", source, store, tmp_path / "pred.csv")
    assert [row["text"] for row in rows] == texts  # every text found as written
    # a missing text stops the run before any scoring, naming the line; or is skipped
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nfine\n\"\"\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["score", "--estimator", str(tmp_path / "est.skops"), "--input", str(bad),
                 "--output", str(tmp_path / "s2"), "--quiet"]) == 2
    assert "bad.csv:3: the text is an empty text" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["score", "--estimator", str(tmp_path / "est.skops"), "--input", str(bad),
                     "--output", str(tmp_path / "s2"), "--quiet", "--skip-invalid-texts"]) == 0
    assert "skipped 1 row(s)" in capsys.readouterr().err


def test_sklml_score_without_pyarrow_says_which_extra(tiny_llama, tmp_path, capsys, monkeypatch):
    import importlib.util

    from sklearn_llm_multilabel import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    monkeypatch.setattr(cli, "_load_estimator", lambda args: object())
    source = write_csv(tmp_path / "in.csv", [["text"], ["hello"]])
    assert cli.main(["score", "--estimator", "x", "--input", str(source), "--output",
                     str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install pyarrow" in err and "pip install '.[ray]'" in err
