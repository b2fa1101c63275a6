"""Generic loaders for annotator tables, returning scikit-learn Bunches.

Every loader returns a :class:`~sklearn.utils.Bunch` with ``data`` (list of
texts), ``target`` (annotator proportions in [0, 1], shape (n, L); 0/1 for
gold-only datasets), ``target_gold`` (0/1: ``target >= 0.5``), ``label_names``,
``n_annotators`` (int array; -1 when unknown), ``ids``, ``DESCR`` and
``annotator_labels``: per item, every annotator's label list when the source
records them (per-annotator tables, Le-Wi-Di files), else None. They are the
targets of ``LLMMultiLabelClassifier(finetune="lora",
finetune_targets="annotators")``: pass them to ``fit(..., annotator_labels=...)``.
``annotator_ids``: per item, the ids of those annotators (aligned with
``annotator_labels``) when the source names them (a long table's annotator
column, a wide table's annotator columns, a Le-Wi-Di file's ``annotators``),
else None; ``demo_selection="annotator"`` needs them.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, check_random_state

from .._validation import missing_annotator_id
from .._warnings import warn
from ..exceptions import DatasetFormatError, DatasetWarning

DATA_ENV = "SKLEARN_LLM_MULTILABEL_DATA"


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Folder of the shared datasets.

    Order: ``data_home``; the environment variable
    ``SKLEARN_LLM_MULTILABEL_DATA``; ``../shared/data`` next to the working
    directory or to the repository checkout.

    Raises
    ------
    FileNotFoundError
        When none exists (tests skip on it).

    Examples
    --------
    >>> get_data_home()  # doctest: +SKIP
    PosixPath('/work/shared/data')
    """
    explicit = data_home if data_home is not None else os.environ.get(DATA_ENV)
    if explicit:
        if not Path(explicit).is_dir():
            raise FileNotFoundError(f"Data folder {explicit} does not exist.")
        return Path(explicit).resolve()
    candidates = [Path.cwd() / ".." / "shared" / "data",
                  Path(__file__).resolve().parents[2] / ".." / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"No data folder found (looked at {[str(c) for c in candidates]}). Pass "
        f"data_home=... or set {DATA_ENV}."
    )


def make_bunch(texts, target, label_names, *, n_annotators=None, ids=None, descr="",
               gold_only=False, annotator_labels=None, annotator_ids=None) -> Bunch:
    """Assemble the standard Bunch (validating shapes and ranges).

    ``annotator_labels``, when the source names its annotators' choices, is
    per item the list of every annotator's label list (label-name order); it
    is None for sources that store counts or proportions only.
    ``annotator_ids``, when the source identifies its annotators, is per item
    the list of their ids, aligned with ``annotator_labels`` (None otherwise).

    Examples
    --------
    >>> ds = make_bunch(["a text", "another"], [[1.0, 0.0], [0.5, 0.5]], ["x", "y"])
    >>> ds.label_names, ds.target.shape
    (['x', 'y'], (2, 2))
    """
    target = np.asarray(target, dtype=float)
    if target.ndim != 2 or target.shape != (len(texts), len(label_names)):
        raise ValueError(f"target shape {target.shape} does not match "
                         f"{len(texts)} texts x {len(label_names)} labels.")
    if target.size and (target.min() < 0 or target.max() > 1):
        raise ValueError("target proportions must lie in [0, 1].")
    n = len(texts)
    if annotator_labels is not None:
        order = {name: j for j, name in enumerate(label_names)}
        annotator_labels = [[sorted(set(s), key=order.__getitem__) for s in sets]
                            for sets in annotator_labels]
        if len(annotator_labels) != n:
            raise ValueError(f"annotator_labels has {len(annotator_labels)} items for {n} texts.")
    if annotator_ids is not None:
        if annotator_labels is None or len(annotator_ids) != n or any(
                len(a) != len(b) for a, b in zip(annotator_ids, annotator_labels)):
            raise ValueError("annotator_ids must give one id per entry of annotator_labels.")
        missing = missing_annotator_id(annotator_ids)
        if missing is not None:
            raise ValueError(f"annotator_ids of item {missing[0]} (entry {missing[1]}) is "
                             "missing; give every annotator an id, or annotator_ids=None.")
        annotator_ids = [[str(a) for a in ids] for ids in annotator_ids]
    return Bunch(
        data=list(texts),
        annotator_labels=annotator_labels,
        annotator_ids=annotator_ids,
        target=target,
        target_gold=(target >= 0.5).astype(int),
        label_names=list(label_names),
        n_annotators=np.full(n, -1) if n_annotators is None else np.asarray(n_annotators),
        ids=np.arange(n).astype(str) if ids is None else np.asarray(ids).astype(str),
        gold_only=gold_only,
        DESCR=descr,
    )


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _undecodable(path: Path, encoding: str, exc: UnicodeDecodeError) -> DatasetFormatError:
    """The error for a file that is not ``encoding`` text, naming its first bad line."""
    line = 1
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                line = number
                break
    return DatasetFormatError(
        f"{path}:{line}: not valid {encoding} text ({exc.reason}); pass the file's encoding "
        "(encoding=..., or --encoding for sklml), e.g. 'latin-1' or 'cp1252'."
    )


def _read_rows(path: Path, delimiter: str | None, required: Sequence[str],
               encoding: str = "utf-8", labels: Sequence[str] = ()):
    """Yield (line number, row dict) from a delimited file with a header.

    ``required`` and ``labels`` name columns the header must have; a missing
    label column is reported as an unknown label.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    with open(path, newline="", encoding=encoding) as fh:
        try:
            reader = csv.DictReader(fh, delimiter=_delimiter(path, delimiter))
            header = reader.fieldnames or []
            _check_unique_header(path, header)
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetFormatError(f"{path}:1: missing column(s) {missing}; found {header}.")
            unknown = [c for c in labels if c not in header]
            if unknown:
                raise DatasetFormatError(
                    f"{path}:1: unknown label column(s) {unknown}; found {header}.")
            for row in csv_rows(reader, path):
                if None in row or any(row[c] is None for c in required):
                    raise DatasetFormatError(
                        f"{path}:{reader.line_num}: expected {len(header)} fields, got a "
                        "different number."
                    )
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise _undecodable(path, encoding, exc) from None


def csv_rows(reader, path: Path):
    """The rows of a csv ``reader``; a malformed row (a cell past the csv module's field
    limit, 131,072 characters) is an error naming the file and line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise DatasetFormatError(
            f"{path}:{reader.line_num + 1}: {exc}. A cell this long is not read from CSV (the model "
            "reads at most max_text_tokens tokens of a text anyway): shorten the text, or give "
            "the texts as a Parquet file.") from None


def read_header(path: Path, delimiter: str | None = None, encoding: str = "utf-8") -> list[str]:
    """The column names of a delimited file (empty for an empty file)."""
    with open(path, newline="", encoding=encoding) as fh:
        try:
            return next(csv.reader(fh, delimiter=_delimiter(Path(path), delimiter)))
        except StopIteration:
            return []
        except UnicodeDecodeError as exc:
            raise _undecodable(Path(path), encoding, exc) from None


def _check_unique_header(path: Path, header: Sequence[str]) -> None:
    """A repeated column name is ambiguous (a row would keep only one of its cells): refused."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(position)
    repeated = {name: where for name, where in positions.items() if len(where) > 1}
    if repeated:
        listed = "; ".join(f"{name!r} at columns {', '.join(map(str, where))}"
                           for name, where in repeated.items())
        raise DatasetFormatError(
            f"{path}:1: repeated column name(s): {listed}. Each column must have its own name; "
            "rename or remove the copies.")


def _label_list(path: Path, line: int, column: str, cell: str, separator: str) -> set[str]:
    """The labels of a ``separator``-separated cell; a JSON list or object is refused."""
    stripped = cell.strip()
    if stripped[:1] in ("[", "{"):
        kind = "list" if stripped[0] == "[" else "object"
        raise DatasetFormatError(
            f"{path}:{line}: column {column!r} holds a JSON {kind} ({stripped[:60]!r}), not a "
            f"{separator!r}-separated label list; expand it into one row per annotator (a long "
            "table) and load that.")
    return {v.strip() for v in cell.split(separator) if v.strip()}


#: how a wide table's 0/1 cell holding several annotations (``'0, 1'``) is read
REPEATS = ("error", "first", "any", "mean")


def _binary_cell(path: Path, line: int, column: str, cell: str, separator: str,
                 repeats: str) -> float:
    """One annotator's 0/1 for one label, from a cell that may repeat the annotation."""
    values = [v.strip() for v in cell.split(separator)]
    if any(v not in ("0", "1") for v in values):
        raise DatasetFormatError(
            f"{path}:{line}: column {column!r} must be 0 or 1 (or empty); got {cell!r}.")
    if len(values) == 1:
        return float(values[0])
    if repeats == "error":
        raise DatasetFormatError(
            f"{path}:{line}: column {column!r} holds {len(values)} annotations ({cell!r}); pass "
            "repeats='first' (the first one), 'any' (1 if any is 1) or 'mean' (their mean), or "
            "--repeats for sklml.")
    numbers = [float(v) for v in values]
    if repeats == "first":
        return numbers[0]
    if repeats == "any":
        return max(numbers)
    return float(np.mean(numbers))


def _count(path: Path, line: int, column: str, value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise DatasetFormatError(
            f"{path}:{line}: column {column!r} must be a non-negative integer count; got {value!r}."
        )
    return count


def load_annotations(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    item_column: str = "id",
    labels_column: str | None = "labels",
    label_columns: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    separator: str = ",",
    delimiter: str | None = None,
    encoding: str = "utf-8",
    annotator_columns: str | None = None,
    annotator_column: str | None = "annotator",
    repeats: str = "error",
    descr: str = "",
) -> Bunch:
    """Load a per-annotator table: one row per (item, annotator), or one row per item.

    Long tables (the default) have one row per (item, annotator); labels come
    either from ``labels_column`` (a ``separator``-separated list; empty means
    no label) or from ``label_columns`` (one 0/1 column per label).
    ``target[i, l]`` is the fraction of item ``i``'s annotators that chose ``l``.

    Wide tables have one row per item and columns per annotator, named by the
    regular expression ``annotator_columns`` (matched in full), which must
    have a named group ``annotator``: with a second named group ``label``
    (``r"(?P<annotator>Annotator\\d+)_(?P<label>\\w+)"`` for
    ``Annotator3_sexist``), each column is one annotator's 0/1 for one label;
    without it (``r"(?P<annotator>Annotator\\d+)"``), each column holds one
    annotator's ``separator``-separated label list. An empty cell means that
    annotator did not see the item. Columns that start with an annotator's
    name but do not match the pattern are listed in one
    :class:`~sklearn_llm_multilabel.exceptions.DatasetWarning`. A cell that
    holds a JSON list or dict of labels (a nested layout) is an error: expand
    it into a long table first (one row per annotator) and load that.

    Every table's header must name each column once: a repeated name is an
    error naming it and its positions.

    Parameters
    ----------
    path : str or path
        CSV (or TSV, by extension or ``delimiter``) with a header.
    text_column, item_column : str
        ``item_column`` (default ``"id"``) groups a long table's rows into
        items; a file without it groups rows by their text (the rows of one
        text are its annotations) and numbers the items by their first line.
    labels_column : str or None, default="labels"
    label_columns : sequence of str or None
        One 0/1 column per label; takes precedence over ``labels_column``.
    label_names : sequence of str or None
        The label set (required order); inferred (sorted) when None. Labels
        outside it are an error.
    separator : str, default=","
    delimiter : str or None
    encoding : str, default="utf-8"
        Text encoding of the file; a file that is not valid in it raises
        :class:`~sklearn_llm_multilabel.exceptions.DatasetFormatError` naming
        the first bad line.
    annotator_columns : str or None, default=None
        A wide table's annotator columns, as a regular expression (see above);
        ``item_column`` is then optional (row numbers when the file has none)
        and ``labels_column`` / ``label_columns`` are not used.
    annotator_column : str or None, default="annotator"
        Long tables: the column naming each row's annotator, used when the
        file has it (or required, when another name is given). An annotator
        who labels one item twice is an error naming both lines. None: not
        checked (every row is one annotation).
    repeats : {"error", "first", "any", "mean"}, default="error"
        Wide 0/1 tables: a cell holding several annotations (``'0, 1'``, split
        on ``separator``) is an error, or read as its first value, as 1 if any
        is 1, or as their mean (a fractional vote; the annotator's label set in
        ``annotator_labels`` then has the labels whose mean is at least 0.5).

    Returns
    -------
    Bunch

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_text("id,text,labels\\n1,hi,a;b\\n1,hi,a\\n2,yo,\\n", encoding="utf-8")
    >>> ds = load_annotations(p, separator=";")
    >>> ds.label_names, ds.target.tolist(), ds.n_annotators.tolist()
    (['a', 'b'], [[1.0, 0.5], [0.0, 0.0]], [2, 1])

    A wide table, one 0/1 column per annotator and label:

    >>> _ = p.write_text("text,A1_a,A1_b,A2_a,A2_b\\nhi,1,0,1,1\\nyo,0,0,,\\n", encoding="utf-8")
    >>> ds = load_annotations(p, annotator_columns=r"(?P<annotator>A\\d)_(?P<label>\\w)")
    >>> ds.label_names, ds.target.tolist(), ds.n_annotators.tolist()
    (['a', 'b'], [[1.0, 0.5], [0.0, 0.0]], [2, 1])
    """
    path = Path(path)
    if repeats not in REPEATS:
        raise ValueError(f"repeats must be one of {list(REPEATS)}; got {repeats!r}.")
    if annotator_columns is not None:
        return _load_wide(path, text_column, item_column, annotator_columns, label_names,
                          separator, delimiter, encoding, descr, repeats)
    if labels_column is None and label_columns is None:
        raise ValueError("pass labels_column or label_columns.")
    use_columns = label_columns is not None
    required = [text_column, *(label_columns if use_columns else [labels_column])]
    if item_column != "id":
        required.append(item_column)  # named by the user: it must be there
    if annotator_column is not None and annotator_column != "annotator":
        required.append(annotator_column)  # named by the user: it must be there
    order: list[str] = []
    texts: dict[str, str] = {}
    votes: dict[str, list[set[str]]] = {}
    raters: dict[str, list[str]] = {}
    seen: dict[tuple[str, str], int] = {}
    by_text: dict[str, str] = {}  # without an id column, rows of one text are one item
    for line, row in _read_rows(path, delimiter, required, encoding):
        item = (row[item_column] if item_column in row
                else by_text.setdefault(row[text_column], str(line)))
        if annotator_column is not None and annotator_column in row:
            pair = (item, row[annotator_column])
            if pair in seen:
                raise DatasetFormatError(
                    f"{path}:{line}: annotator {pair[1]!r} labels item {item!r} again (first at "
                    f"line {seen[pair]}); each annotator may label an item once. Remove the "
                    "copy, or pass annotator_column=None if these rows are distinct annotations.")
            seen[pair] = line
        if use_columns:
            chosen = set()
            for col in label_columns:
                value = row[col].strip()
                if value not in ("0", "1"):
                    raise DatasetFormatError(
                        f"{path}:{line}: column {col!r} must be 0 or 1; got {row[col]!r}."
                    )
                if value == "1":
                    chosen.add(col)
        else:
            chosen = _label_list(path, line, labels_column, row[labels_column], separator)
        if label_names is not None:
            unknown = chosen - set(label_names)
            if unknown:
                raise DatasetFormatError(f"{path}:{line}: unknown label(s) {sorted(unknown)}.")
        if item not in texts:
            order.append(item)
            texts[item] = row[text_column]
            votes[item] = []
            raters[item] = []
        elif texts[item] != row[text_column]:
            raise DatasetFormatError(f"{path}:{line}: item {item!r} appears with another text.")
        votes[item].append(chosen)
        if annotator_column is not None and annotator_column in row:
            raters[item].append(row[annotator_column])
    if not order:
        raise DatasetFormatError(f"{path}: no data rows.")
    names = list(label_names) if label_names is not None else (
        list(label_columns) if use_columns else sorted(set().union(*[v for vs in votes.values()
                                                                      for v in vs])))
    n_ann = np.array([len(votes[i]) for i in order])
    counts = np.array([[sum(n in v for v in votes[i]) for n in names] for i in order], float)
    named = all(len(raters[i]) == len(votes[i]) for i in order)
    return make_bunch([texts[i] for i in order], counts / n_ann[:, None], names,
                      n_annotators=n_ann, ids=order, descr=descr,
                      annotator_labels=[votes[i] for i in order],
                      annotator_ids=[raters[i] for i in order] if named else None)


_WIDE_FORMS = ("r'(?P<annotator>Annotator\\d+)_(?P<label>\\w+)' for one 0/1 column per "
               "annotator and label, or r'(?P<annotator>Annotator\\d+)' for one label-list "
               "column per annotator")


def _wide_columns(path: Path, header: Sequence[str], pattern: str, text_column: str,
                  item_column: str) -> dict[str, tuple[str, str | None]]:
    """``column -> (annotator, label or None)`` of a wide table, with the pattern checked."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"annotator_columns={pattern!r} is not a regular expression: {exc}.") \
            from None
    if "annotator" not in regex.groupindex:
        raise ValueError(
            f"annotator_columns={pattern!r} needs a named group 'annotator' (and 'label' for "
            f"0/1 columns), e.g. {_WIDE_FORMS}.")
    columns = {}
    for name in header:
        match = regex.fullmatch(name)
        if match and name not in (text_column, item_column):
            columns[name] = (match.group("annotator"), match.groupdict().get("label"))
    if not columns:
        raise DatasetFormatError(
            f"{path}:1: no column matches the annotator_columns pattern {pattern}; found "
            f"{list(header)}.")
    annotators = {annotator for annotator, _ in columns.values()}
    unmatched = [name for name in header if name not in columns
                 and name not in (text_column, item_column)
                 and any(name.startswith(a) for a in annotators)]
    if unmatched:
        warn(
            f"{path}: {len(unmatched)} column(s) start with an annotator's name but do not match "
            f"annotator_columns={pattern!r}, so they are not read: {unmatched}. Widen the "
            "pattern if they hold annotations.", DatasetWarning)
    return columns


def _load_wide(path: Path, text_column: str, item_column: str, pattern: str, label_names,
               separator: str, delimiter: str | None, encoding: str, descr: str,
               repeats: str) -> Bunch:
    """:func:`load_annotations` for a wide table (one row per item, annotator columns)."""
    texts, ids, votes, sets, raters = [], [], [], [], []
    columns: dict[str, tuple[str, str | None]] | None = None
    binary = False
    for line, row in _read_rows(path, delimiter, [text_column], encoding):
        if columns is None:
            columns = _wide_columns(path, list(row), pattern, text_column, item_column)
            binary = any(label is not None for _, label in columns.values())
        item_votes: dict[str, dict[str, float]] = {}
        for name, (annotator, label) in columns.items():
            cell = (row[name] or "").strip()
            if not cell:
                continue  # this annotator did not see the item
            chosen = item_votes.setdefault(annotator, {})
            if label is None:
                labels = _label_list(path, line, name, cell, separator)
                if labels and labels <= {"0", "1"}:
                    raise ValueError(
                        f"{path}:{line}: column {name!r} holds {cell!r}, a 0/1 value, but "
                        f"annotator_columns={pattern!r} has no named group 'label' to say "
                        f"which label it is; use e.g. {_WIDE_FORMS}.")
                chosen.update(dict.fromkeys(labels, 1.0))
            else:
                chosen[label] = _binary_cell(path, line, name, cell, separator, repeats)
        if label_names is not None:
            unknown = {k for v in item_votes.values() for k, x in v.items() if x > 0} \
                - set(label_names)
            if unknown:
                raise DatasetFormatError(f"{path}:{line}: unknown label(s) {sorted(unknown)}.")
        if not item_votes:
            raise DatasetFormatError(f"{path}:{line}: no annotator labelled this item.")
        texts.append(row[text_column])
        ids.append(row[item_column] if item_column in row else str(line))
        votes.append(list(item_votes.values()))
        sets.append([{k for k, x in v.items() if x >= 0.5} for v in item_votes.values()])
        raters.append(list(item_votes))
    if not texts:
        raise DatasetFormatError(f"{path}: no data rows.")
    if label_names is not None:
        names = list(label_names)
    elif binary:
        names = sorted({label for _, label in columns.values() if label is not None})
    else:
        names = sorted(set().union(*[v for vs in sets for v in vs]))
    n_ann = np.array([len(vs) for vs in votes])
    counts = np.array([[sum(v.get(n, 0.0) for v in vs) for n in names] for vs in votes], float)
    return make_bunch(texts, counts / n_ann[:, None], names, n_annotators=n_ann, ids=ids,
                      descr=descr, annotator_labels=sets, annotator_ids=raters)


def load_counts(
    path: str | os.PathLike,
    *,
    label_columns: Mapping[str, str],
    text_column: str = "text",
    id_column: str | None = None,
    none_columns: Sequence[str] = (),
    n_annotators: int | str | None = None,
    keep_total: int | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    descr: str = "",
) -> Bunch:
    """Load a per-label count table: one row per item, one count column per label.

    Parameters
    ----------
    path : str or path
    label_columns : mapping
        ``label name -> column``.
    text_column : str, default="text"
    id_column : str or None
    none_columns : sequence of str
        Columns counting annotators who chose no label (e.g. ``Non-Moral``).
    n_annotators : int, str or None
        Annotators per item: a number, a column name, or None for ``keep_total``.
    keep_total : int or None
        Keep only rows whose counts (labels + none columns) sum to this; it is
        then the number of annotators (each annotator picks at least one).
    delimiter : str or None
        Field separator; None: tab for ``.tsv``/``.tab`` files, else comma.
    encoding : str, default="utf-8"

    Returns
    -------
    Bunch

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "counts.csv"
    >>> _ = path.write_text("text,a,b,none\\nhello,2,1,0\\nbye,0,0,3\\n")
    >>> ds = load_counts(path, label_columns={"a": "a", "b": "b"}, none_columns=["none"],
    ...                  keep_total=3)
    >>> ds.target.round(2).tolist()
    [[0.67, 0.33], [0.0, 0.0]]
    """
    path = Path(path)
    if n_annotators is None and keep_total is None:
        raise ValueError("pass n_annotators or keep_total so that counts become proportions.")
    count_cols = [*label_columns.values(), *none_columns]
    required = [text_column, *count_cols]
    if id_column:
        required.append(id_column)
    if isinstance(n_annotators, str):
        required.append(n_annotators)
    texts, ids, rows_counts, n_ann = [], [], [], []
    for line, row in _read_rows(path, delimiter, required, encoding):
        counts = {c: _count(path, line, c, row[c]) for c in count_cols}
        total = sum(counts.values())
        if keep_total is not None and total != keep_total:
            continue
        if isinstance(n_annotators, str):
            n = _count(path, line, n_annotators, row[n_annotators])
        else:
            n = n_annotators if n_annotators is not None else keep_total
        label_counts = [counts[c] for c in label_columns.values()]
        if n <= 0 or max(label_counts) > n:
            raise DatasetFormatError(
                f"{path}:{line}: a label count exceeds the {n} annotators of the item."
            )
        texts.append(row[text_column].strip())
        ids.append(row[id_column] if id_column else str(line))
        rows_counts.append(label_counts)
        n_ann.append(n)
    if not texts:
        raise DatasetFormatError(f"{path}: no data rows (after keep_total={keep_total}).")
    n_ann_arr = np.asarray(n_ann)
    return make_bunch(texts, np.asarray(rows_counts, float) / n_ann_arr[:, None],
                      list(label_columns), n_annotators=n_ann_arr, ids=ids, descr=descr)


def load_proportions(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    descr: str = "",
) -> Bunch:
    """Load a table of texts with one annotator-proportion column per label.

    Parameters
    ----------
    path : str or path
        CSV (or TSV, by extension or ``delimiter``) with a header.
    text_column : str, default="text"
    label_columns : sequence of str or None
        The label columns, in order; None: every column but ``text_column``
        and ``id_column``.
    id_column : str or None, default=None
        The column of item ids (the Bunch's ``ids``); None: the file's line
        numbers.
    delimiter : str or None
    encoding : str, default="utf-8"

    Returns
    -------
    Bunch

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "shares.csv"
    >>> _ = path.write_text("text,care,purity\\nbe kind,1,0.33\\nhello,0,0\\n")
    >>> ds = load_proportions(path)
    >>> ds.label_names, ds.target.tolist()
    (['care', 'purity'], [[1.0, 0.33], [0.0, 0.0]])
    """
    path = Path(path)
    required = [text_column] + ([id_column] if id_column else [])
    rows = _read_rows(path, delimiter, required, encoding, labels=label_columns or ())
    texts, target, labels, ids = [], [], label_columns, []
    for line, row in rows:
        if labels is None:
            labels = [c for c in row if c not in required]
        if not labels:
            raise DatasetFormatError(f"{path}:1: no label columns besides {text_column!r}.")
        values = []
        for label in labels:
            try:
                value = float(row[label])
            except (TypeError, ValueError):
                value = float("nan")
            if not 0.0 <= value <= 1.0:
                raise DatasetFormatError(
                    f"{path}:{line}: column {label!r} must be a proportion in [0, 1]; "
                    f"got {row[label]!r}.")
            values.append(value)
        texts.append(row[text_column])
        target.append(values)
        ids.append(row[id_column] if id_column else str(line))
    if not texts:
        raise DatasetFormatError(f"{path}: no data rows.")
    return make_bunch(texts, np.asarray(target, dtype=float).reshape(-1, len(labels)), labels,
                      ids=ids, descr=descr or f"table {path.name}")


def subset(bunch: Bunch, indices) -> Bunch:
    """The rows ``indices`` of a dataset Bunch.

    Examples
    --------
    >>> from sklearn_llm_multilabel.datasets import load_illustrative_topics
    >>> small = subset(load_illustrative_topics(), [0, 2])
    >>> len(small.data), small.target.shape[0]
    (2, 2)
    """
    indices = np.asarray(indices, dtype=int)
    sets = bunch.get("annotator_labels")
    raters = bunch.get("annotator_ids")
    per_item = {name: [bunch[name][i] for i in indices]  # loaders' other per-item fields
                for name in ("fields", "explanations") if bunch.get(name) is not None}
    return Bunch(**{
        **bunch,
        **per_item,
        "data": [bunch.data[i] for i in indices],
        "annotator_labels": None if sets is None else [sets[i] for i in indices],
        "annotator_ids": None if raters is None else [raters[i] for i in indices],
        "target": bunch.target[indices],
        "target_gold": bunch.target_gold[indices],
        "n_annotators": bunch.n_annotators[indices],
        "ids": bunch.ids[indices],
    })


def train_test_split_bunch(bunch: Bunch, *, test_size=None, train_size=None,
                           random_state=None) -> tuple[Bunch, Bunch]:
    """Seeded split of a dataset Bunch (sklearn's ``train_test_split`` on rows).

    Sizes may be counts, e.g. the paper's MFRC pool of 2,000 train and 200 test items.

    Examples
    --------
    >>> from sklearn_llm_multilabel.datasets import load_illustrative_topics
    >>> train, test = train_test_split_bunch(load_illustrative_topics(), test_size=10,
    ...                                      random_state=0)
    >>> len(train.data), len(test.data)
    (30, 10)
    """
    idx = np.arange(len(bunch.data))
    train_idx, test_idx = train_test_split(idx, test_size=test_size, train_size=train_size,
                                           random_state=check_random_state(random_state))
    return subset(bunch, train_idx), subset(bunch, test_idx)
