"""Readers for the research datasets in ``../shared/data`` (see its README)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ..exceptions import DatasetFormatError
from ._base import get_data_home, load_counts, make_bunch

MFRC_LABELS = ["authority", "care", "equality", "loyalty", "proportionality", "purity"]
HS_BREXIT_LABELS = ["hateful", "aggressive", "offensive"]
GOEMOTIONS_EMOTIONS = [
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
]
GOEMOTIONS_CLUSTERS = {
    "joy": ["amusement", "excitement", "joy", "love"],
    "optimism": ["desire", "optimism", "caring"],
    "admiration": ["pride", "admiration", "gratitude", "relief", "approval", "realization"],
    "surprise": ["surprise", "confusion", "curiosity"],
    "fear": ["fear", "nervousness"],
    "sadness": ["remorse", "embarrassment", "disappointment", "sadness", "grief"],
    "anger": ["anger", "disgust", "annoyance", "disapproval"],
}
XED_LABELS = ["anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust"]


def load_mfrc(data_home: str | os.PathLike | None = None) -> Bunch:
    """Moral Foundations Reddit Corpus, the N = 3 subset with exact distributions.

    Items whose counts sum to 3 (13,508 items): each of their three annotators
    picked at least one label, so ``target = count / 3`` over the paper's six
    foundations; ``Non-Moral`` and ``Thin Morality`` mean no label.

    Source: Trager et al. (2022), "The Moral Foundations Reddit Corpus",
    arXiv:2208.05545; licence CC BY 4.0. Reads
    ``<data_home>/mfrc/MFRC_nlpforsocialinteractions.csv``: tab-separated
    despite its name, columns ``ID``, ``text`` and one annotator count per
    foundation (``Equality``, ``Care``, ``Non-Moral``, ``Authority``,
    ``Thin Morality``, ``Loyalty``, ``Proportionality``, ``Purity``).
    ``data_home`` defaults to ``$SKLEARN_LLM_MULTILABEL_DATA`` (see
    :func:`get_data_home`).

    Examples
    --------
    >>> ds = load_mfrc()  # doctest: +SKIP
    >>> ds.target.shape[1], len(ds.label_names)  # doctest: +SKIP
    (6, 6)
    """
    path = get_data_home(data_home) / "mfrc" / "MFRC_nlpforsocialinteractions.csv"
    return load_counts(
        path,
        label_columns={name: name.capitalize() for name in MFRC_LABELS},
        text_column="text", id_column="ID", none_columns=["Non-Moral", "Thin Morality"],
        keep_total=3, delimiter="\t",
        descr="MFRC (Trager et al., 2022), CC BY 4.0; items with exactly 3 annotations.",
    )


#: how Le-Wi-Di files spell the field of the further annotation streams
_OTHER_ANNOTATIONS = ("other annotations", "other_annotations")


def _other_streams(item: dict) -> dict:
    info = item["other_info"]
    for key in _OTHER_ANNOTATIONS:
        if key in info:
            return info[key]
    raise KeyError(" or ".join(repr(k) for k in _OTHER_ANNOTATIONS))


def _item_text(item: dict, text_field: str | None, path: Path, item_id: str) -> str:
    """The item's text; with ``text_field``, one field of a JSON-encoded text (a dialogue)."""
    text = item["text"]
    if text_field is None:
        return text
    try:
        value = json.loads(text) if isinstance(text, str) else text
        return str(value[text_field])
    except (json.JSONDecodeError, KeyError, TypeError, IndexError):
        raise DatasetFormatError(
            f"{path}: item {item_id!r}: text_field={text_field!r} needs a text that is a JSON "
            f"object with that field; got {str(text)[:60]!r}.") from None


def read_json_items(path: Path) -> dict:
    """The items of a Le-Wi-Di JSON file (an object of id -> item), refusing repeated ids and
    repeated fields (a JSON reader would keep only the last copy)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    repeated: list[list[str]] = []  # per JSON object, in parse order: its repeated keys

    def unique_keys(pairs):
        counts = Counter(key for key, _ in pairs)
        repeated.append(sorted(key for key, n in counts.items() if n > 1))
        return dict(pairs)

    try:
        items = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}).") from exc
    except RecursionError:
        raise DatasetFormatError(f"{path}: nested too deeply to be a data file.") from None
    if repeated and repeated[-1]:  # the outermost object is parsed last: the items
        raise DatasetFormatError(
            f"{path}: item id(s) {repeated[-1]} appear more than once; a JSON reader would keep "
            "only the last copy. Give each item its own id.")
    nested = sorted({key for keys in repeated for key in keys})
    if nested:
        raise DatasetFormatError(
            f"{path}: field(s) {nested} appear more than once in one item; a JSON reader would "
            "keep only the last copy.")
    if not isinstance(items, dict) or not items:
        raise DatasetFormatError(f"{path}: expected a non-empty object of items.")
    return items


def load_lewidi(path: str | os.PathLike, *, label_streams: dict[str, str | None],
                text_field: str | None = None) -> Bunch:
    """A Le-Wi-Di JSON file with several 0/1 annotation streams as labels.

    Parameters
    ----------
    path : str or path
    label_streams : dict
        ``label name -> key`` in ``other_info["other annotations"]`` (or
        ``other_info["other_annotations"]``, the other spelling of Le-Wi-Di
        files); None means the item's main ``annotations`` field.
    text_field : str or None, default=None
        For files whose ``text`` is a JSON-encoded object (a dialogue, for
        instance): the field of it to use as the text.

    Examples
    --------
    >>> ds = load_lewidi("HS-Brexit_test.json",  # doctest: +SKIP
    ...                  label_streams={"hateful": None,
    ...                                 "offensive": "offensive language detection"})
    >>> ds.label_names  # doctest: +SKIP
    ['hateful', 'offensive']
    """
    path = Path(path)
    items = read_json_items(path)
    texts, ids, target, n_ann, per_annotator, raters = [], [], [], [], [], []
    for item_id, item in items.items():
        try:
            streams = [item["annotations"] if key is None else _other_streams(item)[key]
                       for key in label_streams.values()]
            text = _item_text(item, text_field, path, item_id)
        except (KeyError, TypeError) as exc:
            raise DatasetFormatError(f"{path}: item {item_id!r} lacks field {exc}.") from exc
        row, columns = [], []
        sizes = set()
        for name, stream in zip(label_streams, streams):
            votes = []
            for value in str(stream).split(","):
                value = value.strip()
                if value in ("0", "No"):  # "No" appears three times in HS-Brexit: a 0
                    votes.append(0)
                elif value == "1":
                    votes.append(1)
                else:
                    raise DatasetFormatError(
                        f"{path}: item {item_id!r}, label {name!r}: annotation {value!r} is not 0/1."
                    )
            sizes.add(len(votes))
            row.append(np.mean(votes))
            columns.append(votes)
        if len(sizes) != 1:
            raise DatasetFormatError(
                f"{path}: item {item_id!r}: annotation streams have different lengths {sizes}."
            )
        texts.append(text)
        ids.append(item_id)
        target.append(row)
        n_ann.append(sizes.pop())
        names = list(label_streams)
        per_annotator.append([[names[j] for j, col in enumerate(columns) if col[k]]
                              for k in range(n_ann[-1])])
        named = [a.strip() for a in str(item.get("annotators", "")).split(",") if a.strip()]
        raters.append(named if len(named) == n_ann[-1] else None)
    return make_bunch(texts, target, list(label_streams), n_annotators=n_ann, ids=ids,
                      descr=f"Le-Wi-Di file {path.name}", annotator_labels=per_annotator,
                      annotator_ids=None if None in raters else raters)


def load_hs_brexit(split: str = "train", data_home: str | os.PathLike | None = None) -> Bunch:
    """HS-Brexit (SemEval-2023 Le-Wi-Di) as three labels: hateful, aggressive, offensive.

    ``target`` is the mean of the six annotators' 0/1 values per label;
    ``annotator_labels`` holds each annotator's choices.

    Source: Akhtar et al. (2021), HS-Brexit, as released for SemEval-2023
    Task 11 "Learning With Disagreements" (Leonardelli et al., 2023); see the
    task's release for its licence. Offensive content. Reads
    ``<data_home>/hs_brexit/HS-Brexit_{train,dev,test}.json`` (784 / 168 /
    168 tweets; each item has ``text``, ``annotators``, ``annotations`` and
    ``other_info`` with the aggressive and offensive streams).

    Examples
    --------
    >>> ds = load_hs_brexit("test")  # doctest: +SKIP
    >>> ds.target.shape[1], len(ds.label_names)  # doctest: +SKIP
    (3, 3)
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test'; got {split!r}.")
    path = get_data_home(data_home) / "hs_brexit" / f"HS-Brexit_{split}.json"
    return load_lewidi(path, label_streams={
        "hateful": None,
        "aggressive": "aggressive language detection",
        "offensive": "offensive language detection",
    })


def _read_lines(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield line_no, line


def load_goemotions(split: str = "train", data_home: str | os.PathLike | None = None, *,
                    pooled: bool = True) -> Bunch:
    """GoEmotions gold labels pooled into the paper's 7 clusters (neutral dropped).

    Gold sets only (no per-rater data): ``target`` is 0/1 and ``gold_only`` is True.
    ``pooled=False`` keeps the 28 original labels (27 emotions and neutral).

    Source: Demszky et al. (2020), "GoEmotions: A Dataset of Fine-Grained
    Emotions" (ACL 2020); see its release for the licence. Reads
    ``<data_home>/goemotions/{train,dev,test}.tsv``: no header, columns text,
    comma-separated label ids (0..27) and comment id.

    Examples
    --------
    >>> ds = load_goemotions("dev", pooled=False)  # doctest: +SKIP
    >>> ds.target.shape[1], len(ds.label_names)  # doctest: +SKIP
    (28, 28)
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test'; got {split!r}.")
    path = get_data_home(data_home) / "goemotions" / f"{split}.tsv"
    if pooled:
        cluster_of = {e: c for c, members in GOEMOTIONS_CLUSTERS.items() for e in members}
        names = list(GOEMOTIONS_CLUSTERS)
    else:
        cluster_of = {e: e for e in GOEMOTIONS_EMOTIONS}
        names = list(GOEMOTIONS_EMOTIONS)
    texts, ids, target = [], [], []
    for line_no, line in _read_lines(path):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DatasetFormatError(f"{path}:{line_no}: expected 3 tab-separated fields, "
                                     f"got {len(fields)}.")
        text, label_ids, comment_id = fields
        row = np.zeros(len(names))
        for value in label_ids.split(","):
            try:
                emotion = GOEMOTIONS_EMOTIONS[int(value)]
            except (ValueError, IndexError):
                raise DatasetFormatError(
                    f"{path}:{line_no}: label id {value!r} is not in 0..27."
                ) from None
            if emotion in cluster_of:
                row[names.index(cluster_of[emotion])] = 1
        texts.append(text)
        ids.append(comment_id)
        target.append(row)
    return make_bunch(texts, target, names, ids=ids, gold_only=True,
                      descr=f"GoEmotions (Demszky et al., 2020), {len(names)} labels, gold only.")


def load_xed(data_home: str | os.PathLike | None = None) -> Bunch:
    """XED English: gold multi-label Plutchik emotions (``gold_only`` is True).

    Source: Öhman et al. (2020), "XED: A Multilingual Dataset for Sentiment
    Analysis and Emotion Detection" (COLING 2020); licence CC BY 4.0. Reads
    ``<data_home>/xed/en-annotated.tsv``: ``text<TAB>1, 4, 7`` per line,
    labels 1..8 (anger, anticipation, disgust, fear, joy, sadness, surprise,
    trust).

    Examples
    --------
    >>> ds = load_xed()  # doctest: +SKIP
    >>> ds.target.shape[1], len(ds.label_names)  # doctest: +SKIP
    (8, 8)
    """
    path = get_data_home(data_home) / "xed" / "en-annotated.tsv"
    texts, target = [], []
    for line_no, line in _read_lines(path):
        if "\t" not in line:
            raise DatasetFormatError(f"{path}:{line_no}: expected 'text<TAB>labels'.")
        text, labels = line.rsplit("\t", 1)
        row = np.zeros(len(XED_LABELS))
        for value in labels.split(","):
            try:
                index = int(value) - 1
            except ValueError:
                index = -1
            if not 0 <= index < len(XED_LABELS):
                raise DatasetFormatError(f"{path}:{line_no}: label {value.strip()!r} is not in 1..8.")
            row[index] = 1
        texts.append(text)
        target.append(row)
    return make_bunch(texts, target, XED_LABELS, gold_only=True,
                      descr="XED English (Öhman et al., 2020), CC BY 4.0, gold only.")
