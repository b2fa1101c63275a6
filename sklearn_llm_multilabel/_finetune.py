"""Supervised fine-tuning targets, training examples and adapter identities.

Pure Python and NumPy (no torch): what the LoRA fine-tuning of
:class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier` trains on, and the
content address of a trained adapter. The training itself lives in
:mod:`sklearn_llm_multilabel.backends._finetune`.

Training targets
----------------
``"majority"``
    One label set per text: the labels that at least half of the annotators
    chose (proportion >= 0.5), the empty set (written as the none word) when
    there is none. The paper's supervised fine-tuning.
``"annotators"``
    Label sets that reproduce the annotator distribution. With per-annotator
    label sets (``annotator_labels`` in ``fit``) each annotator's set is one
    target; otherwise ``n_sets`` sets per text are drawn so that label ``l``
    is in ``round(H_l * n_sets)`` of them (each label's frequency matches its
    proportion as closely as ``n_sets`` allows). Identical sets of one text are
    merged into one example whose weight is their share, so every text weighs
    1 in the loss in total and an epoch costs one pass per *distinct* set.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._prompts import format_labels

#: fewer optimiser steps than this and a fit warns: the adapter can learn little
MIN_USEFUL_STEPS = 10
#: the training targets ``finetune_targets`` accepts
FINETUNE_TARGETS = ("majority", "annotators")
#: bumped when the training procedure changes, so old adapters are not reused
#: (2: no optimiser step at learning rate 0)
FINETUNE_VERSION = "2"


@dataclass(frozen=True)
class TrainingExample:
    """One fine-tuning example: the prompt, the answer the loss is on, its weight."""

    prompt: str
    answer: str
    weight: float


def majority_label_sets(Y: np.ndarray, label_names: Sequence[str]) -> list[list[str]]:
    """The labels at least half of the annotators chose, per text.

    Examples
    --------
    >>> majority_label_sets(np.array([[0.5, 0.2], [0.0, 1 / 3]]), ["care", "purity"])
    [['care'], []]
    """
    return [[label_names[j] for j in np.flatnonzero(row >= 0.5)] for row in np.asarray(Y)]


def sample_label_sets(Y: np.ndarray, label_names: Sequence[str], n_sets: int,
                      rng: np.random.RandomState) -> list[list[list[str]]]:
    """``n_sets`` label sets per text whose label frequencies match ``Y``.

    Label ``l`` of text ``i`` goes into ``round(Y[i, l] * n_sets)`` of the
    text's sets, chosen at random (seeded by ``rng``), independently per label.

    Examples
    --------
    >>> sets = sample_label_sets(np.array([[2 / 3, 1 / 3]]), ["a", "b"], 3,
    ...                          np.random.RandomState(0))
    >>> sorted(len([s for s in sets[0] if name in s]) for name in "ab")
    [1, 2]
    """
    Y = np.asarray(Y, dtype=float)
    out = []
    for row in Y:
        members = np.zeros((n_sets, len(label_names)), dtype=bool)
        for j, share in enumerate(row):
            count = int(np.round(share * n_sets))
            if count:
                members[rng.choice(n_sets, size=count, replace=False), j] = True
        out.append([[label_names[j] for j in np.flatnonzero(m)] for m in members])
    return out


def check_annotator_labels(annotator_labels, n_samples: int,
                           label_names: Sequence[str]) -> list[list[list[str]]]:
    """Validate per-annotator label sets: one list of label lists per text.

    Examples
    --------
    >>> check_annotator_labels([[["a"], []]], 1, ["a", "b"])
    [[['a'], []]]
    """
    if isinstance(annotator_labels, (str, bytes)) or not hasattr(annotator_labels, "__len__"):
        raise TypeError("annotator_labels must be a sequence with one list of per-annotator "
                        "label lists per text.")
    if len(annotator_labels) != n_samples:
        raise ValueError(f"annotator_labels has {len(annotator_labels)} rows but X has "
                         f"{n_samples} texts.")
    known = set(label_names)
    checked = []
    for i, sets in enumerate(annotator_labels):
        if isinstance(sets, (str, bytes)) or not hasattr(sets, "__iter__"):
            raise TypeError(f"annotator_labels[{i}] must be a list of label lists, got {sets!r}.")
        sets = [list(s) for s in sets]
        if not sets:
            raise ValueError(f"annotator_labels[{i}] is empty: each text needs at least one "
                             "annotator's label list.")
        for s in sets:
            if any(not isinstance(v, str) for v in s):
                raise TypeError(f"annotator_labels[{i}] holds {s!r}; label lists must hold "
                                "label names.")
            unknown = sorted(set(s) - known)
            if unknown:
                raise ValueError(f"annotator_labels[{i}] holds labels not in the label set "
                                 f"{list(label_names)}: {unknown}.")
        checked.append(sets)
    return checked


def target_label_sets(Y: np.ndarray, label_names: Sequence[str], targets: str, *,
                      annotator_labels=None, n_sets: int = 6,
                      rng: np.random.RandomState | None = None) -> list[list[tuple[list[str], float]]]:
    """Per text, the distinct target label sets and their weights (summing to 1).

    Labels in each set follow ``label_names`` order, as in demonstrations.

    Examples
    --------
    >>> target_label_sets(np.array([[1.0, 0.5]]), ["a", "b"], "majority")
    [[(['a', 'b'], 1.0)]]
    >>> target_label_sets(np.zeros((1, 2)), ["a", "b"], "annotators",
    ...                   annotator_labels=[[["a"], [], []]])
    [[(['a'], 0.3333333333333333), ([], 0.6666666666666666)]]
    """
    if targets not in FINETUNE_TARGETS:
        raise ValueError(f"finetune_targets must be one of {FINETUNE_TARGETS}; got {targets!r}.")
    if targets == "majority":
        return [[(s, 1.0)] for s in majority_label_sets(Y, label_names)]
    if annotator_labels is not None:
        per_text = check_annotator_labels(annotator_labels, len(Y), label_names)
    else:
        per_text = sample_label_sets(Y, label_names, n_sets, rng or np.random.RandomState(0))
    order = {name: j for j, name in enumerate(label_names)}
    out = []
    for sets in per_text:
        canon = [tuple(sorted(set(s), key=order.__getitem__)) for s in sets]
        counts = Counter(canon)
        out.append([(list(s), c / len(canon)) for s, c in counts.items()])
    return out


def training_examples(prompts: Sequence[str], label_sets, *, label_format: str, none_label: str,
                      answer_lead: str, answer_end: str) -> list[TrainingExample]:
    """Pair each text's prompt with its target label lists, written as in demonstrations.

    ``answer_lead`` is what a demonstration has between the query's end and the
    label list (the space after ``Label(s):``); ``answer_end`` what follows the
    list (the newline), so that the model also learns where the list ends.

    Examples
    --------
    >>> training_examples(["Input: hi\\nLabel(s):"], [[(["a"], 1.0)]], label_format="comma",
    ...                   none_label="none", answer_lead=" ", answer_end="\\n")
    [TrainingExample(prompt='Input: hi\\nLabel(s):', answer=' a\\n', weight=1.0)]
    """
    out = []
    for prompt, sets in zip(prompts, label_sets, strict=True):
        for labels, weight in sets:
            written = format_labels(labels, label_format, none_label)
            out.append(TrainingExample(prompt, answer_lead + written + answer_end, float(weight)))
    return out


def adapter_key(base_fingerprint: str, examples: Sequence[TrainingExample], settings: dict) -> str:
    """Content address of an adapter: base model, every training example, every setting.

    Two fits with the same key would train the same adapter (training is
    seeded and deterministic on one device type), so the second reuses it.

    Examples
    --------
    >>> ex = [TrainingExample("p", " a\\n", 1.0)]
    >>> adapter_key("base", ex, {"rank": 8}) == adapter_key("base", ex, {"rank": 16})
    False
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": FINETUNE_VERSION, "base": base_fingerprint,
                              "settings": settings}, sort_keys=True, default=str).encode())
    for ex in examples:
        digest.update(json.dumps([ex.prompt, ex.answer, repr(ex.weight)]).encode())
    return digest.hexdigest()
