"""Unary and binary breakdown prompts (the paper's §2); their aggregation is in :mod:`._aggregation`.

Pure Python and numpy. A breakdown prompt is split in three parts so that the
engine can encode the per-text part once and reuse it for every label (or
label pair) query of that text:

* ``prefix``: instruction and demonstrations, shared by all texts;
* ``middle``: ``"Question: <text>\\n"``, shared by all queries of a text;
* ``suffixes``: one short query per label (unary) or label pair (binary).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ._prompts import join_pieces

UNARY_INSTRUCTION = (
    'Classify the following question-label pairs as either "reasonable" or "unreasonable". '
    'Output either "reasonable" or "unreasonable" and nothing else.'
)
BINARY_INSTRUCTION = (
    'Classify the following question into one of the two following labels. '
    'Output either "a" or "b" depending on which label is better and nothing else.'
)
UNARY_ANSWERS = ("reasonable", "unreasonable")
BINARY_ANSWERS = ("a", "b")


@dataclass(frozen=True)
class BreakdownParts:
    """A breakdown prompt: ``prefix + middle(text) + suffixes[k]`` is query k.

    Attributes
    ----------
    kind : {"unary", "binary"}
    prefix : str
    middle_head, middle_tail : str
        The per-text part is ``middle_head + text + middle_tail``.
    suffixes : tuple of str
    answers : tuple of str
        The two answer words scored at the end of every query.
    answer_lead : str
        Text before the answer in demonstrations (for in-context answer tokens).
    pairs : tuple of (int, int)
        Binary only: the candidate indices (into labels + none) of each suffix.
    prefix_data : tuple of (int, int)
        Character spans of ``prefix`` that hold demonstration texts (encoded
        sealed, see :class:`~sklearn_llm_multilabel._prompts.PromptParts`).
    """

    kind: str
    prefix: str
    middle_head: str
    middle_tail: str
    suffixes: tuple[str, ...]
    answers: tuple[str, str]
    answer_lead: str
    pairs: tuple[tuple[int, int], ...] = ()
    prefix_data: tuple[tuple[int, int], ...] = ()

    def middle(self, text: str) -> str:
        """The per-text part of every query."""
        return self.middle_head + text + self.middle_tail

    def text_span(self, middle: str) -> tuple[int, int]:
        """The character span of the text inside a part built by :meth:`middle`."""
        return len(self.middle_head), len(middle) - len(self.middle_tail)


def candidate_pairs(n_candidates: int) -> list[tuple[int, int]]:
    """All pairs ``i < j`` of candidates (labels + none): ``C(L+1, 2)`` of them."""
    return list(itertools.combinations(range(n_candidates), 2))


def _unary_block(label: str) -> str:
    return f"Label: {label}\nIs the label reasonable:"


def _binary_block(label_a: str, label_b: str) -> str:
    return f"a. {label_a}\nb. {label_b}\nCorrect Label:"


def select_breakdown_demonstrations(Y_gold: np.ndarray, n_shots: int, random_state=None):
    """Seeded (row, gold candidate, non-gold candidate, unary flag, binary flag) tuples.

    Rows are drawn without replacement; half the demonstrations are positive
    (the unary flag: a gold label answered ``reasonable``), half negative (a
    non-gold label answered ``unreasonable``), alternating; the binary flag
    (gold candidate placed first) alternates the same way. The empty set
    counts as the candidate ``L`` (none): gold for rows without labels,
    otherwise not.

    Examples
    --------
    >>> Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> [d[3] for d in select_breakdown_demonstrations(Y, 4, random_state=0)]
    [True, False, True, False]
    """
    rng = check_random_state(random_state)
    Y_gold = np.asarray(Y_gold, dtype=bool)
    n, L = Y_gold.shape
    rows = rng.permutation(n)[: min(n_shots, n)]
    demos = []
    for k, row in enumerate(rows):
        gold = list(np.flatnonzero(Y_gold[row])) or [L]
        other = [c for c in range(L + 1) if c not in gold]
        demos.append((int(row), int(rng.choice(gold)), int(rng.choice(other)), k % 2 == 0,
                      k % 2 == 0))
    return demos


def select_breakdown_demonstrations_official(Y_gold: np.ndarray, n_shots: int, seed: int):
    """The released code's breakdown demonstrations, as (row, gold, non-gold, unary, binary).

    Python's ``random`` seeded with ``seed`` for each draw; only rows with at
    least one gold label; half the unary demonstrations reasonable (a gold
    label), half unreasonable (a non-gold candidate, none included), in
    shuffled order; the binary gold position a coin flip.

    Examples
    --------
    >>> Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> demos = select_breakdown_demonstrations_official(Y, 2, seed=0)
    >>> sorted(d[3] for d in demos), all(d[0] != 3 for d in demos)
    ([False, True], True)
    """
    Y_gold = np.asarray(Y_gold, dtype=bool)
    n, L = Y_gold.shape
    eligible = [i for i in range(n) if Y_gold[i].any()]
    rows = random.Random(seed).sample(eligible, min(n_shots, len(eligible)))
    n_reasonable = len(rows) // 2
    unary = [True] * n_reasonable + [False] * (len(rows) - n_reasonable)
    random.Random(seed).shuffle(unary)
    choices = random.Random(seed)
    demos = []
    for row, is_reasonable in zip(rows, unary):
        gold = [int(c) for c in np.flatnonzero(Y_gold[row])]
        other = [c for c in range(L + 1) if c not in gold]
        demos.append((int(row), choices.choice(gold), choices.choice(other), is_reasonable,
                       choices.random() < 0.5))
    return demos


def build_unary_prompt(label_names: Sequence[str], texts: Sequence[str], demos,
                       none_label: str = "none", protocol: str = "library") -> BreakdownParts:
    """The unary prompt: "is label l reasonable for this text?" for every label.

    ``demos`` come from :func:`select_breakdown_demonstrations`; a demonstration
    marked positive shows a gold label answered ``reasonable``, otherwise a
    non-gold label answered ``unreasonable``.

    Examples
    --------
    >>> parts = build_unary_prompt(["care", "purity"], ["Be kind."], [(0, 0, 1, True)])
    >>> print(parts.prefix + parts.middle("Hi") + parts.suffixes[1])  # doctest: +ELLIPSIS
    Classify the following question-label pairs as either "reasonable" or ...
    <BLANKLINE>
    Question: Be kind.
    Label: care
    Is the label reasonable: reasonable
    Question: Hi
    Label: purity
    Is the label reasonable:
    """
    names = [*label_names, none_label]
    official = protocol == "official"
    gap, tail = ("\n\n", " ") if official else ("\n", "")
    pieces = [(UNARY_INSTRUCTION + "\n\n", False)]
    for row, positive, negative, is_positive, *_ in demos:
        label, answer = (positive, "reasonable") if is_positive else (negative, "unreasonable")
        pieces += [("Question: ", False), (texts[row], True),
                   (f"\n{_unary_block(names[label])} {answer}{gap}", False)]
    queried = names if official else list(label_names)  # the released code also asks about none
    prefix, data = join_pieces(pieces)
    return BreakdownParts(
        kind="unary", prefix=prefix, prefix_data=data, middle_head="Question: ", middle_tail="\n",
        suffixes=tuple(_unary_block(name) + tail for name in queried),
        answers=UNARY_ANSWERS, answer_lead="Is the label reasonable: ",
    )


def build_binary_prompt(label_names: Sequence[str], texts: Sequence[str], demos,
                        none_label: str = "none", protocol: str = "library") -> BreakdownParts:
    """The binary prompt: "which of labels a and b fits better?" for every pair.

    Candidates are the labels plus ``none_label``; each demonstration pairs a
    gold and a non-gold candidate, the gold one placed first or second as
    drawn, and answers with its letter.

    Examples
    --------
    >>> parts = build_binary_prompt(["care", "purity"], ["Be kind."], [(0, 0, 2, False)])
    >>> len(parts.suffixes), parts.pairs
    (3, ((0, 1), (0, 2), (1, 2)))
    >>> print(parts.prefix.splitlines()[2:6])
    ['Question: Be kind.', 'a. none', 'b. care', 'Correct Label: b']
    """
    names = [*label_names, none_label]
    official = protocol == "official"
    gap, tail = ("\n\n", " ") if official else ("\n", "")
    pieces = [(BINARY_INSTRUCTION + "\n\n", False)]
    for row, positive, negative, *flags in demos:
        positive_first = flags[-1]
        first, second = (positive, negative) if positive_first else (negative, positive)
        answer = "a" if positive_first else "b"
        pieces += [("Question: ", False), (texts[row], True),
                   (f"\n{_binary_block(names[first], names[second])} {answer}{gap}", False)]
    pairs = candidate_pairs(len(names))
    prefix, data = join_pieces(pieces)
    return BreakdownParts(
        kind="binary", prefix=prefix, prefix_data=data, middle_head="Question: ", middle_tail="\n",
        suffixes=tuple(_binary_block(names[i], names[j]) + tail for i, j in pairs),
        answers=BINARY_ANSWERS, answer_lead="Correct Label: ", pairs=tuple(pairs),
    )
