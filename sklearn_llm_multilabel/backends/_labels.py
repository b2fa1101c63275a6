"""Label token index: which token ids start each label, and step finding.

``V(l)`` (the paper's first-token variants) holds, by default
(``variants="word"``), the first token of `` l``, `` L`` and of the label
capitalised, each with a leading space, and the first token the label has
*in context*, after the prompt's answer lead (``"Label(s): "``) and after the
format's separator (``", "``). Surface forms without a leading space are left
out: their first token is often a bare fragment (``P``, ``E``, ``pro``,
``equ`` for SmolLM2) that starts many other words and would create false
steps. ``variants="in_context"`` keeps only the in-context token after the
answer lead, as the paper's released code does. The last entry of every
per-label list is the empty-set word (``none``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._prompts import format_labels
from .._warnings import warn
from ..exceptions import LabelTokenWarning, TokenizerError


@dataclass(frozen=True)
class LabelTokens:
    """Token ids of labels + none.

    Attributes
    ----------
    names : tuple of str
        Label names followed by the none word.
    first_ids : tuple of tuple of int
        ``first_ids[k]``: the first-token variants ``V(k)``.
    sequences : tuple of tuple of tuple of int
        ``sequences[k]``: the full token sequence of every variant of label
        ``k`` (used to tell labels apart that share a first token).
    collisions : dict
        ``token id -> names`` for first tokens shared by several labels.
    """

    names: tuple[str, ...]
    first_ids: tuple[tuple[int, ...], ...]
    sequences: tuple[tuple[tuple[int, ...], ...], ...]
    collisions: dict[int, tuple[str, ...]]

    def index_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Padded ``(L+1, K)`` id matrix and its validity mask for vectorised gathers."""
        width = max(len(ids) for ids in self.first_ids)
        idx = np.zeros((len(self.first_ids), width), dtype=np.int64)
        valid = np.zeros_like(idx, dtype=bool)
        for k, ids in enumerate(self.first_ids):
            idx[k, : len(ids)] = ids
            valid[k, : len(ids)] = True
        return idx, valid

    def token_to_labels(self) -> dict[int, tuple[int, ...]]:
        """``token id -> indices of the labels it starts``."""
        table: dict[int, list[int]] = {}
        for k, ids in enumerate(self.first_ids):
            for i in ids:
                table.setdefault(i, []).append(k)
        return {i: tuple(ks) for i, ks in table.items()}


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _in_context(tokenizer, context: str, label: str) -> list[int]:
    """Tokens the label gets after ``context`` (common-prefix difference)."""
    ctx = _encode(tokenizer, context)
    full = _encode(tokenizer, context + label)
    n = 0
    while n < min(len(ctx), len(full)) and ctx[n] == full[n]:
        n += 1
    return full[n:]


def build_label_tokens(
    tokenizer,
    label_names: Sequence[str],
    none_label: str,
    *,
    answer_lead: str,
    label_format: str,
    variants: str = "word",
) -> LabelTokens:
    """Compute ``V(l)`` for every label and ``none``; warn about shared first tokens.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    label_names : sequence of str
    none_label : str
    answer_lead : str
        Text right before the label list in a demonstration (``"\\nLabel(s): "``).
    label_format : {"comma", "json"}
    variants : {"word", "in_context"}, default="word"
        ``"word"``: word-initial surface forms and in-context tokens (see the
        module docstring); ``"in_context"``: the single in-context token after
        the answer lead (the paper's released code).

    Returns
    -------
    LabelTokens
    """
    if variants not in ("word", "in_context"):
        raise ValueError(f"variants must be 'word' or 'in_context'; got {variants!r}.")
    names = [*label_names, none_label]
    first_ids: list[tuple[int, ...]] = []
    sequences: list[tuple[tuple[int, ...], ...]] = []
    other = "x" if "x" not in [n.lower() for n in names] else "y"
    for name in names:
        seqs: list[tuple[int, ...]] = []
        if variants == "in_context":
            written = format_labels([name], label_format)
            ids = _in_context(tokenizer, answer_lead + written[: written.index(name)], name)
            if ids:
                seqs.append(tuple(ids))
        for form in dict.fromkeys([name, name.lower(), name.capitalize()]):
            if variants == "in_context":
                break
            ids = _encode(tokenizer, " " + form)
            if ids and tokenizer.decode(ids[:1]).strip():  # not a bare space token
                seqs.append(tuple(ids))
            for pos_labels in ([form, other], [other, form]):
                written = format_labels(pos_labels, label_format)
                at = written.index(form) if pos_labels[0] == form else written.rindex(form)
                ids = _in_context(tokenizer, answer_lead + written[:at], form)
                if ids:
                    seqs.append(tuple(ids))
        if not seqs:
            raise TokenizerError(
                f"The tokenizer encodes label {name!r} to no tokens; it cannot be scored."
            )
        seqs = list(dict.fromkeys(seqs))
        sequences.append(tuple(seqs))
        first_ids.append(tuple(sorted({s[0] for s in seqs})))
    owners: dict[int, list[str]] = {}
    for name, ids in zip(names, first_ids):
        for i in ids:
            owners.setdefault(i, []).append(name)
    collisions = {i: tuple(ns) for i, ns in owners.items() if len(ns) > 1}
    if collisions:
        described = "; ".join(
            f"{tokenizer.convert_ids_to_tokens(i)!r} starts {', '.join(ns)}"
            for i, ns in sorted(collisions.items())
        )
        warn(
            f"Labels share first tokens ({described}). Their step scores are the same logit, "
            "and a step on a shared token is attributed by the tokens that follow it. "
            "Consider renaming labels so that each starts with its own token.",
            LabelTokenWarning,
        )
    return LabelTokens(tuple(names), tuple(first_ids), tuple(sequences), collisions)


def reduce_label_logits(logits: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``s(l) = max_{v in V(l)} z[v]`` for a batch of next-token logits.

    Parameters
    ----------
    logits : tensor of shape (B, vocab)
    idx, valid : tensors of shape (L+1, K) from :meth:`LabelTokens.index_matrix`

    Returns
    -------
    tensor of shape (B, L+1)
    """
    gathered = logits[:, idx]  # (B, L+1, K)
    gathered = gathered.masked_fill(~valid, float("-inf"))
    return gathered.max(dim=-1).values


def _match_length(generated: Sequence[int], start: int, sequences) -> int:
    """Longest prefix of any of ``sequences`` that the generation matches from ``start``."""
    best = 0
    for seq in sequences:
        n = 0
        while n < len(seq) and start + n < len(generated) and generated[start + n] == seq[n]:
            n += 1
        best = max(best, n)
    return best


def find_steps(
    generated: Sequence[int], n_valid: int, tokens: LabelTokens, table: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Label-generation steps from generated token ids.

    A step is the first valid position at which a token of ``V(l)`` appears,
    for each label or none; a label written twice adds no second step. A token
    shared by several labels is attributed to the label whose full variant
    sequence matches the generated tokens longest.

    Returns
    -------
    positions : ndarray of int
    labels : ndarray of int (index into ``tokens.names``)

    Examples
    --------
    >>> lt = LabelTokens(("a", "b", "none"), ((5,), (6,), (7,)), (((5,),), ((6,),), ((7,),)), {})
    >>> find_steps([1, 5, 2, 6, 5, 9], 6, lt)
    (array([1, 3]), array([0, 1]))
    """
    table = tokens.token_to_labels() if table is None else table
    positions: list[int] = []
    labels: list[int] = []
    seen: set[int] = set()
    gen = list(generated[:n_valid])
    for p, tok in enumerate(gen):
        candidates = table.get(int(tok))
        if not candidates:
            continue
        if len(candidates) > 1:
            label = max(candidates, key=lambda k: _match_length(gen, p, tokens.sequences[k]))
        else:
            label = candidates[0]
        if label in seen:
            continue
        seen.add(label)
        positions.append(p)
        labels.append(label)
    return np.asarray(positions, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def build_answer_tokens(tokenizer, answers: Sequence[str], answer_lead: str) -> LabelTokens:
    """First-token variants of the two answers of a breakdown query.

    Variants: each answer as is and capitalised, with and without a leading
    space, and in context after ``answer_lead``. Answers that share a first
    token cannot be scored apart: :class:`TokenizerError`.
    """
    first_ids, sequences = [], []
    for answer in answers:
        seqs = []
        for form in dict.fromkeys([answer, answer.capitalize()]):
            for text in (form, " " + form):
                ids = _encode(tokenizer, text)
                if ids:
                    seqs.append(tuple(ids))
            ids = _in_context(tokenizer, answer_lead, form)
            if ids:
                seqs.append(tuple(ids))
        seqs = list(dict.fromkeys(seqs))
        sequences.append(tuple(seqs))
        first_ids.append(tuple(sorted({seq[0] for seq in seqs})))
    shared = set(first_ids[0]) & set(first_ids[1])
    # a first token shared by both answers says nothing about which one: drop it
    first_ids = [tuple(i for i in ids if i not in shared) for ids in first_ids]
    if not all(first_ids):
        raise TokenizerError(
            f"Every first token of {answers[0]!r} is also a first token of {answers[1]!r} "
            f"({[tokenizer.convert_ids_to_tokens(i) for i in sorted(shared)]}); this tokenizer "
            "cannot score the two answers apart."
        )
    return LabelTokens(tuple(answers), tuple(first_ids), tuple(sequences), {})
