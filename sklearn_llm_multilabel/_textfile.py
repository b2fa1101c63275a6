"""Texts read from a file or a Ray dataset exactly as written: strings, never inferred types.

A text column is read as strings everywhere (CSV and TSV with Python's csv
module, Parquet only from a string column, a Ray dataset only when its values
are strings), so ``007`` stays ``"007"`` and ``3.10`` stays ``"3.10"``. A
missing, empty or non-string text is an error naming its row, or, with
``skip_invalid=True``, left out and counted. Pure Python; pyarrow is imported
only for Parquet files.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from .exceptions import DatasetFormatError

#: what to install for Parquet
PYARROW_EXTRA = "pip install pyarrow (or the [ray] extra of a checkout: pip install '.[ray]')"
PYARROW_HINT = f"reading and writing Parquet needs pyarrow: {PYARROW_EXTRA}"
TEXT_SUFFIXES = (".csv", ".tsv", ".tab")


def _invalid(where: str, value: object, fix: str) -> DatasetFormatError:
    shown = "a missing value" if value is None else (
        "an empty text" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}")
    return DatasetFormatError(f"{where}: the text is {shown}; {fix}")


def _keep(texts: list, where: Sequence[str], skip_invalid: bool, fix: str) -> tuple[list[str], int]:
    kept, skipped = [], 0
    for text, place in zip(texts, where):
        if isinstance(text, str) and text.strip():
            kept.append(text)
        elif skip_invalid:
            skipped += 1
        else:
            raise _invalid(place, text, fix)
    return kept, skipped


def read_texts(data, text_column: str = "text", *, skip_invalid: bool = False,
               encoding: str = "utf-8") -> tuple[list[str], int]:
    """The texts of ``data`` as written, and how many invalid ones were skipped.

    Parameters
    ----------
    data : str, path or ray.data.Dataset
        A ``.csv``/``.tsv`` file (read as text, cell by cell), a ``.parquet``
        file whose ``text_column`` is a string column, or a Ray dataset.
    text_column : str, default="text"
    skip_invalid : bool, default=False
        Leave out missing, empty and non-string texts (counted) instead of
        raising.
    encoding : str, default="utf-8"
        Encoding of CSV and TSV files.

    Returns
    -------
    texts : list of str
    n_skipped : int

    Raises
    ------
    DatasetFormatError
        An invalid text (naming the file and line or row), a repeated header,
        or a Parquet text column that is not a string column.
    ValueError
        A missing text column, or a file that is not CSV, TSV or Parquet.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("text\\n007\\n1e5\\n3.10\\n", encoding="utf-8")
    >>> read_texts(path)
    (['007', '1e5', '3.10'], 0)
    """
    fix = ("fix it, or skip such rows (skip_invalid=True; --skip-invalid-texts for sklml).")
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file.")
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            return _read_delimited(path, text_column, skip_invalid, encoding, fix)
        if suffix == ".parquet":
            return _read_parquet(path, text_column, skip_invalid, fix)
        raise ValueError(f"{path}: expected a .parquet, .csv or .tsv file.")
    if hasattr(data, "select_columns") and hasattr(data, "take_all"):  # a ray.data.Dataset
        if text_column not in data.columns():
            raise ValueError(f"the dataset has no column {text_column!r} "
                             f"(columns: {data.columns()}).")
        values = [row[text_column] for row in data.select_columns([text_column]).take_all()]
        return _keep(values, [f"dataset row {i}" for i in range(len(values))], skip_invalid, fix)
    raise TypeError("data must be a .parquet/.csv/.tsv path or a ray.data.Dataset.")


def _read_delimited(path: Path, text_column: str, skip_invalid: bool, encoding: str,
                    fix: str) -> tuple[list[str], int]:
    from .datasets._base import _check_unique_header, _delimiter, _undecodable, csv_rows

    texts, places = [], []
    try:
        with open(path, newline="", encoding=encoding) as fh:
            reader = csv.DictReader(fh, delimiter=_delimiter(path, None))
            header = reader.fieldnames or []
            _check_unique_header(path, header)
            if text_column not in header:
                raise ValueError(f"{path}: no column {text_column!r} (columns: {header}).")
            for row in csv_rows(reader, path):
                texts.append(row[text_column])  # None when the row is short
                places.append(f"{path}:{reader.line_num}")
    except UnicodeDecodeError as exc:
        raise _undecodable(path, encoding, exc) from None
    return _keep(texts, places, skip_invalid, fix)


def _read_parquet(path: Path, text_column: str, skip_invalid: bool,
                  fix: str) -> tuple[list[str], int]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"{path}: {PYARROW_HINT}.") from None
    schema = pq.read_schema(path)
    if text_column not in schema.names:
        raise ValueError(f"{path}: no column {text_column!r} (columns: {schema.names}).")
    kind = schema.field(text_column).type
    is_view = getattr(pa.types, "is_string_view", lambda _: False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind)):
        raise DatasetFormatError(
            f"{path}: column {text_column!r} holds {kind} values, not strings; texts are read as "
            "written, never converted. Write the column as strings.")
    values = pq.read_table(path, columns=[text_column])[text_column].to_pylist()
    return _keep(values, [f"{path}: row {i}" for i in range(len(values))], skip_invalid, fix)
