"""The Learning-With-Disagreements 2025 format (LeWiDi, 3rd edition, NLPerspectives @ EMNLP 2025).

Each file is a JSON object of items keyed by id. An item has a ``text``
object of named fields (VariErrNLI: ``context``, the premise, and
``statement``), ``annotations`` (annotator id -> the comma-separated labels
that annotator chose), ``soft_label``, and ``other_info`` (VariErrNLI:
``explanations``, the annotators' rationales). Annotator metadata lies beside
the data in ``<Dataset>_annotators_meta.json``.

Of the four data sets in this format, VariErrNLI is multi-label (each
annotator may choose several of contradiction, entailment, neutral; its soft
label is one Bernoulli distribution per label) and MultiPico (MP) is binary
(irony, one label). CSC (sarcasm, 1 to 6) and Paraphrase (-5 to 5) are rated
on ordinal Likert scales: they are single-choice ordinal tasks, not label
sets, and are refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._warnings import warn
from ..exceptions import DatasetFormatError, DatasetWarning
from ._base import make_bunch
from ._shared import read_json_items

#: how the fields of a two-field text are named in the prompt (others: the field's name)
FIELD_NAMES = {"context": "Premise", "statement": "Statement", "post": "Post", "reply": "Reply"}
#: the most a soft label may differ from the annotators' share (the files round to 0.01)
SOFT_LABEL_TOLERANCE = 0.005 + 1e-9
_ORDINAL_TASKS = {"sarcasm detection": "sarcasm rated from 1 to 6 (CSC)",
                  "paraphrase detection": "paraphrase rated from -5 to 5 (Paraphrase)"}


def format_fields(fields: dict, template: str | None = None) -> str:
    """One line of text from an item's named fields, each written as its name and value.

    Parameters
    ----------
    fields : dict
        The item's ``text`` object.
    template : str or None, default=None
        A ``str.format`` template over the field names
        (``"{context} [SEP] {statement}"``); None writes each field as
        ``"<Name>: <value>"`` in the file's order, joined by a space, with the
        names of :data:`FIELD_NAMES`.

    Examples
    --------
    >>> format_fields({"context": "A man sleeps.", "statement": "A man is awake."})
    'Premise: A man sleeps. Statement: A man is awake.'
    >>> format_fields({"context": "A", "statement": "B"}, "{context} [SEP] {statement}")
    'A [SEP] B'
    """
    values = {k: " ".join(str(v).split()) for k, v in fields.items()}
    if template is not None:
        try:
            return template.format(**values)
        except (KeyError, IndexError) as exc:
            raise ValueError(f"text_template={template!r} names {exc}, which the item's text "
                             f"does not have; its fields are {sorted(values)}.") from None
    return " ".join(f"{FIELD_NAMES.get(k, k.replace('_', ' ').capitalize())}: {v}"
                    for k, v in values.items())


def _read_metadata(path: Path) -> dict:
    """Annotator id -> metadata dict; the released VariErrNLI file has trailing commas (not
    JSON): read without them, with a warning."""
    text = path.read_text(encoding="utf-8")
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        cleaned = re.sub(r",(\s*[}\]])", r"\1", text)
        try:
            found = json.loads(cleaned)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}).") from None
        warn(f"{path}: trailing commas (not JSON) were dropped to read it.", DatasetWarning)
    if not isinstance(found, dict) or not all(isinstance(v, dict) for v in found.values()):
        raise DatasetFormatError(f"{path}: expected an object of annotator id -> metadata.")
    return found


def _labels_of(item_id: str, path: Path, item: dict) -> tuple[list[str], bool]:
    """The label names of the file (from the first item's soft label) and whether it is the
    binary form (``{"0": p, "1": q}``) rather than one Bernoulli per label."""
    soft = item.get("soft_label")
    task = str(item.get("annotation task", ""))
    if task in _ORDINAL_TASKS:
        raise DatasetFormatError(
            f"{path}: the items are rated on an ordinal scale ({_ORDINAL_TASKS[task]}), one "
            "value per annotator: not a set of labels, so not a multi-label task.")
    if not isinstance(soft, dict) or not soft:
        raise DatasetFormatError(f"{path}: item {item_id!r} has no soft_label object.")
    if all(isinstance(v, dict) for v in soft.values()):
        return list(soft), False
    if sorted(float(k) for k in soft) == [0.0, 1.0]:
        return [task.replace(" detection", "") or "positive"], True
    raise DatasetFormatError(
        f"{path}: item {item_id!r}: soft_label has the values {sorted(soft)}: an ordinal scale, "
        "one value per annotator, not a set of labels (not a multi-label task).")


def load_lewidi2025(path: str | os.PathLike, *, text_template: str | None = None,
                    annotators_meta: str | os.PathLike | None | bool = True) -> Bunch:
    """A Learning-With-Disagreements 2025 file: VariErrNLI (multi-label) or MP (binary).

    Parameters
    ----------
    path : str or path
        ``<Dataset>_{train,dev,test}.json``.
    text_template : str or None, default=None
        How an item's text fields become the text the model reads (see
        :func:`format_fields`): by default ``"Premise: <context> Statement:
        <statement>"`` for VariErrNLI, one line.
    annotators_meta : path, True or None, default=True
        The annotator metadata: True reads ``<Dataset>_annotators_meta.json``
        beside ``path`` when it is there; a path reads that file; None skips it.

    Returns
    -------
    Bunch
        As the other loaders (``data``, ``target``, ``label_names``,
        ``annotator_labels``, ``annotator_ids``, ``ids``, ``n_annotators``),
        plus ``fields`` (each item's text fields), ``explanations`` (per item,
        the annotators' rationales, possibly empty) and
        ``annotator_metadata`` (annotator id -> dict, empty when absent).
        ``target`` is the file's soft label (probability of each label,
        rounded as released); it must agree with the annotations within 0.005.

    Raises
    ------
    DatasetFormatError
        An ordinal data set (CSC, Paraphrase), a soft label that disagrees
        with the annotations, an unknown label, a repeated item id or field,
        an item without annotations; each names the file and item.

    Examples
    --------
    >>> ds = load_lewidi2025("VariErrNLI_train.json")  # doctest: +SKIP
    >>> ds.label_names  # doctest: +SKIP
    ['contradiction', 'entailment', 'neutral']
    """
    path = Path(path)
    items = read_json_items(path)
    first_id, first = next(iter(items.items()))
    names, binary = _labels_of(first_id, path, first)
    texts, ids, target, sets, raters, fields, explanations = [], [], [], [], [], [], []
    for item_id, item in items.items():
        where = f"{path}: item {item_id!r}"
        try:
            annotations, soft, text = item["annotations"], item["soft_label"], item["text"]
        except (KeyError, TypeError) as exc:
            raise DatasetFormatError(f"{where} lacks field {exc}.") from None
        if not isinstance(annotations, dict) or not annotations:
            raise DatasetFormatError(f"{where}: no annotations.")
        chosen = []
        for annotator, value in annotations.items():
            labels = [v.strip() for v in str(value).split(",") if v.strip()]
            if binary:
                if labels not in (["0"], ["1"], ["0.0"], ["1.0"]):
                    raise DatasetFormatError(f"{where}: annotator {annotator!r} gave {value!r}, "
                                             "not 0 or 1.")
                labels = names if float(labels[0]) == 1 else []
            unknown = sorted(set(labels) - set(names))
            if unknown:
                raise DatasetFormatError(f"{where}: annotator {annotator!r} chose unknown "
                                         f"label(s) {unknown}; the labels are {names}.")
            chosen.append([n for n in names if n in labels])
        try:
            row = ([float(soft.get("1", soft.get("1.0")))] if binary else
                   [float(soft[n]["1"]) for n in names])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DatasetFormatError(f"{where}: soft_label {soft!r} does not give every label "
                                     f"of {names}.") from None
        if not binary and sorted(soft) != sorted(names):
            raise DatasetFormatError(f"{where}: soft_label names {sorted(soft)}; the file's "
                                     f"labels are {names}.")
        shares = [sum(n in c for c in chosen) / len(chosen) for n in names]
        off = [n for n, p, s in zip(names, row, shares) if abs(p - s) > SOFT_LABEL_TOLERANCE]
        if off:
            raise DatasetFormatError(
                f"{where}: the soft label of {off} ({[round(p, 4) for p in row]}) disagrees with "
                f"the annotations ({[round(s, 4) for s in shares]} of {len(chosen)} annotators).")
        if not isinstance(text, dict):
            text = {"text": text}
        texts.append(format_fields(text, text_template))
        fields.append(dict(text))
        ids.append(item_id)
        target.append(row)
        sets.append(chosen)
        raters.append(list(annotations))
        explanations.append(list((item.get("other_info") or {}).get("explanations") or []))
    metadata = {}
    if annotators_meta is True:
        beside = path.with_name(path.name.rsplit("_", 1)[0] + "_annotators_meta.json")
        metadata = _read_metadata(beside) if beside.is_file() else {}
    elif annotators_meta:
        metadata = _read_metadata(Path(annotators_meta))
    bunch = make_bunch(texts, np.asarray(target, dtype=float), names,
                       n_annotators=np.array([len(s) for s in sets]), ids=ids,
                       descr=f"LeWiDi 2025 file {path.name}", annotator_labels=sets,
                       annotator_ids=raters)
    bunch.update(fields=fields, explanations=explanations, annotator_metadata=metadata)
    return bunch
