"""Prompt templates, label formats, parsers and demonstration sampling.

Pure Python: nothing here imports torch. A prompt is split in two strings:

* the **prefix** (instruction and demonstrations), identical for every query of
  a fitted estimator, so the engine encodes it once and reuses its key/value
  cache;
* the **query** (``Input: <text>\\nLabel(s):``), one per text.

``prefix + query`` is the paper's raw completion prompt, already stripped, so
that the first label is generated with its leading-space token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from ._warnings import warn
from .exceptions import DemonstrationWarning, TokenizerError

DEFAULT_INSTRUCTION = (
    "Classify the following inputs into none, one, or multiple of the following "
    "labels per input: {labels}."
)
DEFAULT_EXAMPLE_TEMPLATE = "Input: {text}\nLabel(s): {labels}"
LABEL_FORMATS = ("comma", "json")
#: ``"library"``: the library's choices; ``"official"``: the paper's released code
PROTOCOLS = ("library", "official")
_SENTINEL = "\x00QUERY\x00"


def join_label_names(labels: Sequence[str]) -> str:
    """Join label names as the paper's instruction does: ``a, b and c``."""
    labels = list(labels)
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def format_labels(label_set: Sequence[str], label_format: str, none_label: str = "none") -> str:
    """Write a label set the way the model is asked to write it.

    Examples
    --------
    >>> format_labels(["care", "purity"], "comma")
    'care, purity'
    >>> format_labels([], "comma")
    'none'
    >>> format_labels(["joy"], "json")
    '{"label": ["joy"]}'
    """
    items = list(label_set) if len(label_set) else [none_label]
    if label_format == "comma":
        return ", ".join(items)
    if label_format == "json":
        return json.dumps({"label": items})
    raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}.")


def label_separator(label_format: str) -> str | None:
    """The character that separates labels in ``label_format`` (labels may not contain it)."""
    return "," if label_format == "comma" else None


def parse_labels(
    text: str, label_names: Sequence[str], label_format: str, none_label: str = "none"
) -> tuple[list[str], list[str]]:
    """Parse a generated label list.

    Matching is case-insensitive and ignores surrounding whitespace and quotes.

    Returns
    -------
    labels : list of str
        Known labels found, in the order of ``label_names``.
    unknown : list of str
        Items that are neither a label nor ``none_label``.

    Examples
    --------
    >>> parse_labels(" Care, purity, fun", ["care", "purity"], "comma")
    (['care', 'purity'], ['fun'])
    >>> parse_labels('{"label": ["none"]}', ["care"], "json")
    ([], [])
    """
    if label_format == "comma":
        items = text.split(",")
    elif label_format == "json":
        items = None
        match = re.search(r"\{.*\}", text, flags=re.S)
        if match:
            try:
                obj = json.loads(match.group(0))
                value = obj.get("label", []) if isinstance(obj, dict) else []
                items = value if isinstance(value, list) else [value]
            except json.JSONDecodeError:
                items = None
        if items is None:  # unfinished or malformed JSON: read the quoted strings
            items = re.findall(r'"([^"]*)"', text)
            items = [it for it in items if it != "label"]
        items = [str(it) for it in items]
    else:
        raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}.")
    lookup = {name.lower(): name for name in label_names}
    found: set[str] = set()
    unknown: list[str] = []
    for item in items:
        key = item.strip().strip("\"'.[]{}").strip().lower()
        if not key or key == none_label.lower():
            continue
        if key in lookup:
            found.add(lookup[key])
        else:
            unknown.append(item.strip())
    return [name for name in label_names if name in found], unknown


def _split_template(example_template: str) -> tuple[str, str, str]:
    """Split ``example_template`` into (before text, between text and labels, after labels)."""
    for field in ("{text}", "{labels}"):
        if example_template.count(field) != 1:
            raise ValueError(
                f"example_template must contain {field} exactly once; got {example_template!r}."
            )
    head, rest = example_template.split("{text}")
    if "{labels}" not in rest:
        raise ValueError("example_template must place {labels} after {text}.")
    mid, tail = rest.split("{labels}")
    if "\n" in tail:
        raise ValueError("example_template may not have a newline after {labels}.")
    if not head.strip():
        raise ValueError(
            "example_template needs a non-empty prefix before {text} (e.g. 'Input: '); "
            "decoding stops when the model starts a new example with it."
        )
    return head, mid, tail


@dataclass(frozen=True)
class PromptParts:
    """The two strings a prompt is made of.

    Attributes
    ----------
    prefix : str
        Instruction and demonstrations; shared by every query.
    query_head, query_tail : str
        A query is ``query_head + text + query_tail``.
    stop_string : str
        The example prefix (``"Input:"``); decoding stops when the model writes it.
    add_bos : bool or None
        Special tokens the engine puts before the prompt: None follows the
        tokenizer's default (the paper's released code tokenises the prompt
        with the tokenizer's default special tokens), True its BOS token,
        False none. Chat templates bring their own (False).
    prefix_data : tuple of (int, int)
        Character spans of ``prefix`` that hold demonstration texts; the
        engine encodes them sealed (a special-token spelling there is read as
        characters, never as a control token).
    """

    prefix: str
    query_head: str
    query_tail: str
    stop_string: str
    add_bos: bool | None
    prefix_data: tuple[tuple[int, int], ...] = ()

    def query(self, text: str) -> str:
        """The per-text part of the prompt."""
        return self.query_head + text + self.query_tail

    def text_span(self, query: str) -> tuple[int, int]:
        """The character span of the text inside a query built by :meth:`query` (sealed
        when encoded, see ``backends._seal``)."""
        return len(self.query_head), len(query) - len(self.query_tail)


def build_prompt(
    label_names: Sequence[str],
    demonstrations: Sequence[tuple[str, Sequence[str]]],
    *,
    instruction: str = DEFAULT_INSTRUCTION,
    example_template: str = DEFAULT_EXAMPLE_TEMPLATE,
    label_format: str = "comma",
    none_label: str = "none",
    chat_template_renderer=None,
    add_bos: bool | None = None,
) -> PromptParts:
    """Build the paper's prompt: instruction, k demonstrations, then the query.

    Parameters
    ----------
    label_names : sequence of str
    demonstrations : sequence of (text, label list)
    instruction : str
        May contain ``{labels}`` (replaced by ``"a, b and c"``).
    example_template : str
        One demonstration; must contain ``{text}`` then ``{labels}``.
    label_format : {"comma", "json"}
    none_label : str
    chat_template_renderer : callable or None
        ``renderer(user_message) -> str`` (the tokenizer's chat template with a
        generation prompt). When given, the prompt is wrapped in it.
    add_bos : bool or None, default=None
        See :class:`PromptParts` (ignored with a chat template).

    Returns
    -------
    PromptParts

    Examples
    --------
    >>> parts = build_prompt(["care", "purity"], [("Be kind.", ["care"])])
    >>> print(parts.prefix + parts.query("Hello"))  # doctest: +ELLIPSIS
    Classify the following inputs into none, one, or multiple ... labels per input: care and purity.
    Input: Be kind.
    Label(s): care
    Input: Hello
    Label(s):
    """
    head, mid, tail = _split_template(example_template)
    instr = instruction.replace("{labels}", join_label_names(label_names)).strip()
    pieces = [(instr + "\n", False)] if instr else []
    for text, labels in demonstrations:
        written = format_labels(labels, label_format, none_label)
        pieces += [(head, False), (text, True), (mid + written + tail + "\n", False)]
    prefix, data = join_pieces(pieces)
    query_tail = mid.rstrip()
    stop_string = head.strip()
    if chat_template_renderer is None:
        return PromptParts(prefix, head, query_tail, stop_string, add_bos=add_bos,
                           prefix_data=data)
    rendered = chat_template_renderer(prefix + _SENTINEL + head.lstrip() + _SENTINEL + query_tail)
    if rendered.count(_SENTINEL) != 2:
        raise TokenizerError("The chat template altered the user message; cannot place the query.")
    chat_prefix, chat_head, chat_tail = rendered.split(_SENTINEL)
    shift = chat_prefix.rfind(prefix) if prefix else 0
    if shift < 0:
        raise TokenizerError("The chat template altered the user message; cannot place the "
                             "demonstrations.")
    return PromptParts(chat_prefix, chat_head, chat_tail, stop_string, add_bos=False,
                       prefix_data=tuple((a + shift, b + shift) for a, b in data))


def join_pieces(pieces: Sequence[tuple[str, bool]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Join (string, is data) pieces, left-stripped; returns the string and its data spans.

    Examples
    --------
    >>> join_pieces([(" Say: ", False), ("hi", True), ("!", False)])
    ('Say: hi!', ((5, 7),))
    """
    raw = "".join(piece for piece, _ in pieces)
    shift = len(raw) - len(raw.lstrip())
    spans, at = [], 0
    for piece, is_data in pieces:
        if is_data and piece:
            spans.append((max(at - shift, 0), at + len(piece) - shift))
        at += len(piece)
    return raw[shift:], tuple(span for span in spans if span[1] > span[0])


def _empty_hint(pools: dict[str, np.ndarray], include_empty: bool) -> str:
    """What to do when the demonstrations fall short because most texts have no label."""
    n_empty = len(pools["empty"])
    n_total = sum(len(pool) for pool in pools.values())
    if include_empty or not n_total or n_empty * 2 < n_total:
        return ""
    return (f" {n_empty} of {n_total} training texts have no label, and the prompt shows none "
            "of them, so the model may never answer 'none': pass include_empty_demos=True "
            "(sklml: --include-empty-demos).")


def select_demonstrations(
    Y_gold: np.ndarray,
    n_shots: int,
    *,
    include_empty: bool = False,
    random_state=None,
) -> np.ndarray:
    """Pick demonstration indices with the paper's seeded sampler.

    By default half of the shots have two or more gold labels and half exactly
    one (none has zero labels). With ``include_empty=True`` a third of the shots
    come from zero-label examples. A pool too small for its share is topped up
    from the other pools with a :class:`DemonstrationWarning`.

    Parameters
    ----------
    Y_gold : ndarray of shape (n_samples, n_labels), 0/1
    n_shots : int
    include_empty : bool, default=False
    random_state : int, RandomState or None

    Returns
    -------
    indices : ndarray of int, shape (n_shots,) (fewer when data are short)

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0]])
    >>> sorted(select_demonstrations(Y, 2, random_state=0).tolist()) in ([0, 1], [0, 2], [1, 3], [2, 3])
    True
    """
    indices, shortfall = _draw_demonstrations(Y_gold, n_shots, include_empty,
                                              check_random_state(random_state))
    if shortfall:
        warn(shortfall, DemonstrationWarning)
    return indices


def _draw_demonstrations(Y_gold: np.ndarray, n_shots: int, include_empty: bool,
                         rng: np.random.RandomState) -> tuple[np.ndarray, str | None]:
    """:func:`select_demonstrations`'s draw, and what its warning would say (None: no
    shortfall)."""
    counts = np.asarray(Y_gold).sum(axis=1)
    pools = {
        "multi": np.flatnonzero(counts >= 2),
        "single": np.flatnonzero(counts == 1),
        "empty": np.flatnonzero(counts == 0),
    }
    if n_shots == 0:
        return np.zeros(0, dtype=int), None
    if include_empty:
        n_empty = n_shots // 3
        n_multi = (n_shots - n_empty) // 2
        want = {"multi": n_multi, "single": n_shots - n_empty - n_multi, "empty": n_empty}
    else:
        n_multi = n_shots // 2
        want = {"multi": n_multi, "single": n_shots - n_multi, "empty": 0}
    chosen: list[int] = []
    remaining: list[int] = []
    for name in ("multi", "single", "empty"):
        pool = rng.permutation(pools[name])
        take = min(want[name], len(pool))
        chosen.extend(pool[:take].tolist())
        if name != "empty" or include_empty:
            remaining.extend(pool[take:].tolist())
    shortfall = n_shots - len(chosen)
    message = None
    if shortfall > 0:
        extra = rng.permutation(np.asarray(remaining, dtype=int))[:shortfall].tolist()
        chosen.extend(extra)
        kinds = {"multi": "with several labels", "single": "with one label",
                 "empty": "with no label"}
        wanted = " and ".join(f"{want[k]} {kinds[k]}" for k in kinds if want[k])
        held = " and ".join(f"{len(pools[k])} {kinds[k]}" for k in kinds
                            if k != "empty" or include_empty)
        outcome = (f"the prompt shows all {len(chosen)} there are; lower n_shots to "
                   f"{len(chosen)} to silence this" if len(chosen) < n_shots else
                   f"the prompt shows {len(chosen)} demonstrations, the missing ones taken from "
                   "the other kinds")
        message = (f"n_shots={n_shots} asks for demonstration texts {wanted}, but the training "
                   f"data have {held}: {outcome}.{_empty_hint(pools, include_empty)}")
    return rng.permutation(np.asarray(chosen, dtype=int)), message


def draw_demonstration_sets(Y_gold: np.ndarray, n_shots: int, n_sets: int, *,
                            include_empty: bool = False, random_state=None) -> list[np.ndarray]:
    """Up to ``n_sets`` demonstration draws of :func:`select_demonstrations`, all different.

    The first draw is the one ``n_sets=1`` gives (the sampler seeded with
    ``random_state``), so one prompt is what it always was; each later draw
    has its own seed, drawn from ``random_state``. A draw that repeats an
    earlier set of texts is dropped; when fewer than ``n_sets`` different sets
    come out of ``3 * n_sets`` draws, a :class:`DemonstrationWarning` says how
    many are used.

    Examples
    --------
    >>> Y = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 1], [1, 0]])
    >>> sets = draw_demonstration_sets(Y, 2, 3, random_state=0)
    >>> len(sets), len({frozenset(s.tolist()) for s in sets})
    (3, 3)
    >>> sets[0].tolist() == select_demonstrations(Y, 2, random_state=0).tolist()
    True
    """
    first = select_demonstrations(Y_gold, n_shots, include_empty=include_empty,
                                  random_state=random_state)
    sets, seen = [first], {frozenset(first.tolist())}
    if n_sets == 1:
        return sets
    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=3 * n_sets)
    for seed in seeds:
        if len(sets) == n_sets:
            break
        # a shortfall was reported by the first draw (no process-wide warning filter here)
        drawn, _ = _draw_demonstrations(Y_gold, n_shots, include_empty,
                                        np.random.RandomState(int(seed)))
        if frozenset(drawn.tolist()) not in seen:
            seen.add(frozenset(drawn.tolist()))
            sets.append(drawn)
    if len(sets) < n_sets:
        warn(f"n_prompts={n_sets}, but the training data give only {len(sets)} different sets "
             f"of n_shots={n_shots} demonstrations; using {len(sets)} prompts.",
             DemonstrationWarning)
    return sets


def select_demonstrations_official(Y_gold: np.ndarray, n_shots: int, seed: int) -> np.ndarray:
    """The released code's sampler: Python's ``random`` seeded with ``seed`` for every draw.

    Half the shots (rounded down) from examples with two or more gold
    labels, the rest from examples with exactly one, in that order; none
    with zero labels. A pool too small for its share gives what it has, with
    a :class:`DemonstrationWarning`.

    Examples
    --------
    >>> Y = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0]])
    >>> select_demonstrations_official(Y, 2, seed=0).tolist() in ([0, 1], [0, 2], [3, 1], [3, 2])
    True
    """
    import random

    counts = np.asarray(Y_gold).sum(axis=1)
    multi = [int(i) for i in np.flatnonzero(counts >= 2)]
    single = [int(i) for i in np.flatnonzero(counts == 1)]
    n_multi = n_shots // 2
    chosen = (random.Random(seed).sample(multi, min(n_multi, len(multi)))
              + random.Random(seed).sample(single, min(n_shots - n_multi, len(single))))
    if len(chosen) < n_shots:
        warn(
            f"n_shots={n_shots} demonstrations were requested ({n_multi} with two or more labels, "
            f"{n_shots - n_multi} with one), but the training data hold {len(multi)} and "
            f"{len(single)}; using {len(chosen)} demonstrations.",
            DemonstrationWarning,
        )
    return np.asarray(chosen, dtype=int)


#: the paper's MFRC prompt (instruction and demonstration template), for replication with
#: ``LLMMultiLabelClassifier(**PAPER_PROMPTS["mfrc"], protocol="official")``
PAPER_PROMPTS: dict[str, dict[str, str]] = {
    "mfrc": {
        "instruction": "Classify the following inputs into none, one, or multiple the following "
                       "moral foundations per input: {labels}.",
        "example_template": "Input: {text}\nMoral foundation(s): {labels}",
    },
}
