"""Batch layout: rows of queries after a shared prefix, with explicit positions and masks.

Rows are left-padded, ``[padding | (prefix) query | tree]``, and their
position ids continue from the prefix, so each row sees exactly the
positions it would see alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._tree import SuffixTree


@dataclass
class Batch:
    """Model inputs of one batch and the bookkeeping needed to extend it.

    Attributes
    ----------
    input_ids : tensor of shape (B, S + T)
    mask : bool tensor of shape (B, 1, S + T, S + T)
        True: attend (over the rows' own keys; the shared prefix is always visible).
    positions : tensor of shape (B, S + T)
    keys_valid : bool tensor of shape (B, S + T)
    next_position : tensor of shape (B,)
        Position id of each row's next token.
    query_length : int
        Columns before the tree tokens (``S``).
    use_shared : bool
        Whether the prefix is attended through shared-prefix attention
        (otherwise it is part of every row).
    """

    input_ids: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    keys_valid: torch.Tensor
    next_position: torch.Tensor
    query_length: int
    use_shared: bool


def layout_rows(rows: list[list[int]], prefix_ids: list[int], pad_id: int, device,
                use_shared: bool, tree: SuffixTree | None = None) -> Batch:
    """First-forward inputs for rows laid out ``[padding | (prefix) row | tree]``.

    With ``use_shared`` the prefix is attended through shared-prefix attention
    and is not part of the rows; otherwise it is prepended to every row.
    ``tree`` tokens (identical for every row) each see the whole row and
    their own ancestors.

    Examples
    --------
    >>> b = layout_rows([[5, 6], [7]], [1, 2], pad_id=0, device="cpu", use_shared=True)
    >>> b.input_ids.tolist(), b.positions.tolist(), b.next_position.tolist()
    ([[5, 6], [0, 7]], [[2, 3], [0, 2]], [4, 3])
    """
    lead = [] if use_shared else list(prefix_ids)
    start = len(prefix_ids) - len(lead)
    seqs = [lead + list(r) for r in rows]
    B, S = len(seqs), max(len(r) for r in seqs)
    T = len(tree.tokens) if tree is not None else 0
    lengths = torch.tensor([len(r) for r in seqs])
    ids = torch.full((B, S + T), pad_id, dtype=torch.long)
    valid = torch.zeros((B, S + T), dtype=torch.bool)
    positions = torch.zeros((B, S + T), dtype=torch.long)
    for b, r in enumerate(seqs):
        n = len(r)
        ids[b, S - n : S] = torch.tensor(r, dtype=torch.long)
        positions[b, S - n : S] = torch.arange(n) + start
    valid[:, :S] = torch.arange(S)[None, :] >= (S - lengths)[:, None]
    structure = torch.ones((S + T, S + T), dtype=torch.bool).tril()
    if tree is not None:
        ids[:, S:] = torch.tensor(tree.tokens, dtype=torch.long)
        valid[:, S:] = True
        positions[:, S:] = (start + lengths)[:, None] + torch.tensor(tree.depths)[None, :]
        structure[S:, S:] = torch.as_tensor(tree.visible)
    mask = (valid[:, None, None, :] & structure[None, None]) | torch.eye(S + T, dtype=torch.bool)
    return Batch(ids.to(device), mask.to(device), positions.to(device), valid.to(device),
                 (start + lengths).to(device), S, use_shared)
