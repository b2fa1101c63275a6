"""Token trees: query suffixes merged on their common leading tokens.

The unary and binary breakdowns append many suffixes after the same text;
merging them into one tree lets a single forward score all of them, each
suffix seeing exactly its own ancestors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SuffixTree:
    """Token sequences merged on their common leading tokens (a trie).

    Attributes
    ----------
    tokens : tuple of int
        One token per node, parents before children.
    depths : tuple of int
        Node depth (0 for the first token of a sequence).
    visible : ndarray of shape (n_nodes, n_nodes), bool
        ``visible[i, j]``: node ``j`` is ``i`` or an ancestor of ``i``.
    ends : tuple of int
        Node of the last token of every sequence, in input order.
    """

    tokens: tuple[int, ...]
    depths: tuple[int, ...]
    visible: np.ndarray
    ends: tuple[int, ...]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> SuffixTree:
        """Merge ``sequences``; scoring a node sees exactly its own sequence's prefix.

        Examples
        --------
        >>> tree = SuffixTree.build([[1, 2, 3], [1, 2, 4], [5]])
        >>> tree.tokens, tree.ends
        ((1, 2, 3, 4, 5), (2, 3, 4))
        """
        if not sequences or any(len(seq) == 0 for seq in sequences):
            raise ValueError("every sequence needs at least one token")
        children: dict[tuple[int, int], int] = {}
        tokens: list[int] = []
        parents: list[int] = []
        ends = []
        for seq in sequences:
            node = -1
            for tok in seq:
                key = (node, int(tok))
                if key not in children:
                    children[key] = len(tokens)
                    tokens.append(int(tok))
                    parents.append(node)
                node = children[key]
            ends.append(node)
        n = len(tokens)
        visible = np.eye(n, dtype=bool)
        depths = [0] * n
        for i, parent in enumerate(parents):
            if parent >= 0:
                visible[i] |= visible[parent]
                depths[i] = depths[parent] + 1
        return cls(tuple(tokens), tuple(depths), visible, tuple(ends))


