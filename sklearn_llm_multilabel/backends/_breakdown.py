"""Engine for unary and binary breakdown queries.

Each text's row holds its per-text part (``Question: <text>``) followed by
all its query suffixes (one per label for unary, one per label pair for
binary) merged into a token tree: suffixes that start with the same tokens
share them, and each tree token attends to the shared prefix, the text and its
own ancestors only, so every suffix is scored exactly as if it were alone
after its text. One forward per batch; only the two answer scores at the end
of each suffix are kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import torch

from .. import _state
from .._breakdown import BreakdownParts
from ._base import BreakdownRecord
from ._engine import ENGINE_VERSION, PrefixEngine, inference
from ._labels import build_answer_tokens, reduce_label_logits
from ._load import LoadedModel
from ._tree import SuffixTree


class BreakdownScorer(PrefixEngine):
    """Scores the unary or binary breakdown queries of texts.

    Parameters
    ----------
    loaded : LoadedModel
    parts : BreakdownParts
    max_text_tokens : int
    """

    def __init__(self, loaded: LoadedModel, parts: BreakdownParts, max_text_tokens: int):
        self.parts = parts
        self.suffix_ids = [list(loaded.tokenizer.encode(s, add_special_tokens=False))
                           for s in parts.suffixes]
        super().__init__(loaded, parts.prefix, True, max_text_tokens,
                         reserved_tokens=max(len(s) for s in self.suffix_ids))
        self.answer_tokens = build_answer_tokens(self.tokenizer, parts.answers, parts.answer_lead)
        idx, valid = self.answer_tokens.index_matrix()
        self._idx = torch.as_tensor(idx, device=loaded.device)
        self._valid = torch.as_tensor(valid, device=loaded.device)
        self._tree = SuffixTree.build(self.suffix_ids)
        payload = {
            "engine": ENGINE_VERSION, "kind": parts.kind, "model": loaded.fingerprint,
            "prefix_ids": self.prefix_ids, "middle": [parts.middle_head, parts.middle_tail],
            "suffix_ids": self.suffix_ids,
            "answers": [list(ids) for ids in self.answer_tokens.first_ids],
        }
        self.fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _tail_tokens(self) -> int:
        return len(self._tree.tokens)

    def _prefill_tail(self) -> int:
        return len(self._tree.tokens)

    def _kept_positions(self) -> int:
        return len(self._tree.ends)

    record_type = BreakdownRecord

    def check_record(self, record: BreakdownRecord) -> None:
        """Raise ValueError when a (cached) record does not hold one answer pair per suffix."""
        if record.answer_scores.shape[0] != len(self.suffix_ids):
            raise ValueError(f"record has {record.answer_scores.shape[0]} queries; expected "
                             f"{len(self.suffix_ids)}")

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncate texts to the token budget and build each text's middle part."""
        return [self.parts.middle(t) for t in self.truncate_texts(texts)]

    def _score_rows(self, rows: list[list[int]], use_prefix_cache: bool) -> list[BreakdownRecord]:
        """One :class:`BreakdownRecord` (answer scores of every suffix) per row.

        ``use_prefix_cache=False`` is the reference computation: every
        (text, suffix) prompt is encoded in full, one at a time.
        """
        if use_prefix_cache:
            return self._score_batch(rows)
        return self._score_batch_uncached(rows)

    def _answers(self, out) -> torch.Tensor:
        return reduce_label_logits(out.logits[:, -1, :].float(), self._idx, self._valid).cpu()

    def _score_batch(self, rows: list[list[int]]) -> list[BreakdownRecord]:
        """All suffixes of a batch of texts in one forward: ``[text | suffix tree]`` per row."""
        use_shared = self._uses_shared_prefix(True)
        shared = self._shared_prefix() if use_shared else None
        batch = self._layout(rows, use_shared, tree=self._tree)
        keep = torch.tensor(self._tree.ends, device=self.loaded.device) + batch.query_length
        with inference(self.model):
            out = self._first_forward(batch, shared, hidden=False, keep=keep)
            B, K, V = out.logits.shape
            scores = reduce_label_logits(out.logits.reshape(B * K, V).float(), self._idx,
                                         self._valid).reshape(B, K, 2).cpu()
        _state.count("texts_scored", B)
        return [BreakdownRecord(np.array(scores[b].numpy(), dtype=np.float32, copy=True))
                for b in range(B)]

    def _score_batch_uncached(self, rows: list[list[int]]) -> list[BreakdownRecord]:
        records = []
        with inference(self.model):
            for row in rows:
                answers = []
                for suffix in self.suffix_ids:
                    ids = torch.tensor([self.prefix_ids + row + suffix], device=self.loaded.device)
                    out = self._forward(hidden=False, input_ids=ids,
                                        attention_mask=torch.ones_like(ids))
                    answers.append(self._answers(out)[0])
                records.append(BreakdownRecord(torch.stack(answers).numpy().astype(np.float32)))
        _state.count("texts_scored", len(rows))
        return records
