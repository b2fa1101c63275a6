"""Engine for unary and binary breakdown queries.

For each text, the per-text part of the prompt (``Question: <text>``) is
encoded once after the shared prefix; then every label (unary) or label pair
(binary) query suffix is scored against that cache, in chunks of rows, and
only the two answer scores at the end of each suffix are kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._breakdown import BreakdownParts
from ._base import _STATS, BreakdownRecord
from ._hf import ENGINE_VERSION, PrefixEngine, evaluation_mode
from ._labels import build_answer_tokens, reduce_label_logits
from ._load import LoadedModel


class BreakdownScorer(PrefixEngine):
    """Scores the unary or binary breakdown queries of texts.

    Parameters
    ----------
    loaded : LoadedModel
    parts : BreakdownParts
    max_text_tokens : int
    rows_per_forward : int, default=64
        Query suffixes scored per forward pass (each row copies its text's
        key/value cache, so this bounds memory).
    """

    def __init__(self, loaded: LoadedModel, parts: BreakdownParts, max_text_tokens: int,
                 rows_per_forward: int = 64):
        self.parts = parts
        self.suffix_ids = [list(loaded.tokenizer.encode(s, add_special_tokens=False))
                           for s in parts.suffixes]
        super().__init__(loaded, parts.prefix, True, max_text_tokens,
                         reserved_tokens=max(len(s) for s in self.suffix_ids))
        self.answer_tokens = build_answer_tokens(self.tokenizer, parts.answers, parts.answer_lead)
        idx, valid = self.answer_tokens.index_matrix()
        self._idx = torch.as_tensor(idx, device=loaded.device)
        self._valid = torch.as_tensor(valid, device=loaded.device)
        self.rows_per_forward = int(rows_per_forward)
        payload = {
            "engine": ENGINE_VERSION, "kind": parts.kind, "model": loaded.fingerprint,
            "prefix_ids": self.prefix_ids, "middle": [parts.middle_head, parts.middle_tail],
            "suffix_ids": self.suffix_ids,
            "answers": [list(ids) for ids in self.answer_tokens.first_ids],
        }
        self.fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncate texts to the token budget and build each text's middle part."""
        return [self.parts.middle(t) for t in self.truncate_texts(texts)]

    def score_queries(
        self,
        queries: Sequence[str],
        *,
        batch_size: int = 8,
        use_prefix_cache: bool = True,
        on_batch: Callable | None = None,
        show_progress: bool = False,
    ) -> list[BreakdownRecord]:
        """One :class:`BreakdownRecord` (answer scores of every suffix) per query.

        ``use_prefix_cache=False`` is the reference computation: every
        (text, suffix) prompt is encoded in full, one at a time.
        """
        query_ids = self.tokenizer(list(queries), add_special_tokens=False)["input_ids"]
        self._check_context(query_ids)
        score = self._score_batch if use_prefix_cache else self._score_batch_uncached
        return self._run_batches(query_ids, batch_size, score, on_batch, show_progress)

    def _answers(self, out) -> torch.Tensor:
        return reduce_label_logits(out.logits[:, -1, :].float(), self._idx, self._valid).cpu()

    def _score_batch(self, rows: list[list[int]]) -> list[BreakdownRecord]:
        B, K = len(rows), len(self.suffix_ids)
        scores = torch.zeros((B, K, 2))
        with evaluation_mode(self.model):
            input_ids, attention, positions, past, next_position = self._layout(rows, True)
            out = self._forward(hidden=False, input_ids=input_ids, attention_mask=attention,
                                position_ids=positions, past_key_values=past)
            text_layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            pairs = [(b, k) for b in range(B) for k in range(K)]
            for start in range(0, len(pairs), self.rows_per_forward):
                chunk = pairs[start : start + self.rows_per_forward]
                text_rows = torch.tensor([b for b, _ in chunk], device=self.loaded.device)
                cache = self._cache_from(text_layers, text_rows)
                ids, att, pos, _, _ = self._pack(
                    [self.suffix_ids[k] for _, k in chunk], attention.shape[1], cache,
                    attention.index_select(0, text_rows), next_position.index_select(0, text_rows),
                )
                answer_out = self._forward(hidden=False, input_ids=ids, attention_mask=att,
                                           position_ids=pos, past_key_values=cache)
                scores[[b for b, _ in chunk], [k for _, k in chunk]] = self._answers(answer_out)
        _STATS["texts_scored"] += B
        return [BreakdownRecord(np.ascontiguousarray(scores[b].numpy(), dtype=np.float32))
                for b in range(B)]

    def _score_batch_uncached(self, rows: list[list[int]]) -> list[BreakdownRecord]:
        records = []
        with evaluation_mode(self.model):
            for row in rows:
                answers = []
                for suffix in self.suffix_ids:
                    ids = torch.tensor([self.prefix_ids + row + suffix], device=self.loaded.device)
                    out = self._forward(hidden=False, input_ids=ids,
                                        attention_mask=torch.ones_like(ids))
                    answers.append(self._answers(out)[0])
                records.append(BreakdownRecord(torch.stack(answers).numpy().astype(np.float32)))
        _STATS["texts_scored"] += len(rows)
        return records
