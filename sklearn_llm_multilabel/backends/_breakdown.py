"""Engine for unary and binary breakdown queries.

Each text's row holds its per-text part (``Question: <text>``) followed by
all its query suffixes (one per label for unary, one per label pair for
binary) merged into a token tree: suffixes that start with the same tokens
share them, and each tree token attends to the shared prefix, the text and its
own ancestors only, so every suffix is scored exactly as if it were alone
after its text. One forward per batch; only the two answer scores at the end
of each suffix are kept.

With ``protocol="official"`` (the paper's released code) each (text, suffix)
query is decoded greedily instead, for up to ``max_new_tokens`` tokens, and
the two answer scores are read at the first generated position whose token
is one of the two answer tokens (the first token of each answer without a
leading space); a query whose generation never writes either answer scores
0.5.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import torch

from .. import _state
from .._breakdown import BreakdownParts
from ..exceptions import TokenizerError
from ..store._records import BreakdownRecord
from ._engine import ENGINE_VERSION, PrefixEngine, inference, output_cache
from ._labels import LabelTokens, build_answer_tokens, reduce_label_logits
from ._load import LoadedModel
from ._text import end_ids
from ._tree import SuffixTree


class BreakdownScorer(PrefixEngine):
    """Scores the unary or binary breakdown queries of texts.

    Parameters
    ----------
    loaded : LoadedModel
    parts : BreakdownParts
    max_text_tokens : int
    add_bos : bool or None, default=None
        See :class:`~._engine.PrefixEngine`.
    protocol : {"library", "official"}, default="library"
        How answers are read (see the module docstring).
    max_new_tokens : int, default=18
        Decoding budget of the official protocol.
    """

    #: queries decoded together under the official protocol
    ROWS_PER_FORWARD = 64

    def __init__(self, loaded: LoadedModel, parts: BreakdownParts, max_text_tokens: int,
                 add_bos: bool | None = None, protocol: str = "library",
                 max_new_tokens: int = 18):
        if protocol not in ("library", "official"):
            raise ValueError(f"protocol must be 'library' or 'official'; got {protocol!r}.")
        self.parts = parts
        self.protocol = protocol
        self.max_new_tokens = int(max_new_tokens)
        self.suffix_ids = [list(loaded.tokenizer.encode(s, add_special_tokens=False))
                           for s in parts.suffixes]
        reserved = max(len(s) for s in self.suffix_ids)
        if protocol == "official":
            reserved += self.max_new_tokens
        super().__init__(loaded, parts.prefix, add_bos, max_text_tokens, reserved_tokens=reserved,
                         prefix_data=parts.prefix_data)
        if protocol == "official":
            self.answer_tokens = official_answer_tokens(self.tokenizer, parts.answers)
        else:
            self.answer_tokens = build_answer_tokens(self.tokenizer, parts.answers,
                                                     parts.answer_lead)
        idx, valid = self.answer_tokens.index_matrix()
        self._idx = torch.as_tensor(idx, device=loaded.device)
        self._valid = torch.as_tensor(valid, device=loaded.device)
        self._tree = SuffixTree.build(self.suffix_ids)
        payload = {
            "engine": ENGINE_VERSION, "kind": parts.kind, "model": loaded.fingerprint,
            "prefix_ids": self.prefix_ids, "middle": [parts.middle_head, parts.middle_tail],
            "suffix_ids": self.suffix_ids,
            "answers": [list(ids) for ids in self.answer_tokens.first_ids],
            "protocol": protocol, "max_new_tokens": self.max_new_tokens,
        }
        self.fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _tail_tokens(self) -> int:
        return len(self._tree.tokens) if self.protocol == "library" else self._reserved

    def _prefill_tail(self) -> int:
        return len(self._tree.tokens) if self.protocol == "library" else 0

    def _kept_positions(self) -> int:
        return len(self._tree.ends) if self.protocol == "library" else len(self.suffix_ids)

    record_type = BreakdownRecord

    def check_record(self, record: BreakdownRecord) -> None:
        """Raise ValueError when a (cached) record does not hold one answer pair per suffix."""
        if record.answer_scores.shape[0] != len(self.suffix_ids):
            raise ValueError(f"record has {record.answer_scores.shape[0]} queries; expected "
                             f"{len(self.suffix_ids)}")

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncate texts to the token budget and build each text's middle part."""
        return [self.parts.middle(t) for t in self.truncate_texts(texts)]

    def query_data(self, query: str) -> list[tuple[int, int]]:
        """The text's span in a middle part built by :meth:`prepare_queries`."""
        return [self.parts.text_span(query)]

    def _score_rows(self, rows: list[list[int]], use_prefix_cache: bool) -> list[BreakdownRecord]:
        """One :class:`BreakdownRecord` (answer scores of every suffix) per row.

        ``use_prefix_cache=False`` is the reference computation: every
        (text, suffix) prompt is encoded in full, one at a time.
        """
        if self.protocol == "official":
            return self._score_generated(rows, use_prefix_cache)
        if use_prefix_cache:
            return self._score_batch(rows)
        return self._score_batch_uncached(rows)

    def _score_generated(self, rows: list[list[int]], use_prefix_cache: bool) -> list[BreakdownRecord]:
        """Official protocol: every (text, suffix) query decoded greedily, answers read where
        the model first writes one of them."""
        K = len(self.suffix_ids)
        queries = [list(row) + suffix for row in rows for suffix in self.suffix_ids]
        scores = np.zeros((len(queries), 2), dtype=np.float32)
        for start in range(0, len(queries), self.ROWS_PER_FORWARD):
            chunk = queries[start : start + self.ROWS_PER_FORWARD]
            scores[start : start + len(chunk)] = self._decode_answers(chunk, use_prefix_cache)
        _state.count("texts_scored", len(rows))
        return [BreakdownRecord(np.array(scores[i * K : (i + 1) * K], copy=True))
                for i in range(len(rows))]

    def _decode_answers(self, rows: list[list[int]], use_prefix_cache: bool) -> np.ndarray:
        """``(len(rows), 2)`` answer logits at each row's first answer token; 0 when none."""
        use_shared = self._uses_shared_prefix(use_prefix_cache)
        shared = self._shared_prefix() if use_shared else None
        batch = self._layout(rows, use_shared)
        answer_ids = torch.tensor([ids[0] for ids in self.answer_tokens.first_ids],
                                  device=self.loaded.device)
        ends = torch.tensor(sorted(end_ids(self.model, self.tokenizer)) or [-1],
                               device=self.loaded.device)
        result = np.zeros((len(rows), 2), dtype=np.float32)
        active = np.arange(len(rows))
        keys_valid, next_position = batch.keys_valid, batch.next_position
        with inference(self.model):
            out = self._first_forward(batch, shared, hidden=False)
            for step in range(self.max_new_tokens):
                logits = out.logits[:, -1, :].float()
                next_tokens = logits.argmax(dim=-1)
                hit = (next_tokens[:, None] == answer_ids[None, :]).any(dim=-1)
                if hit.any():
                    result[active[hit.cpu().numpy()]] = logits[hit][:, answer_ids].cpu().numpy()
                finished = (hit | (next_tokens[:, None] == ends[None, :]).any(dim=-1))
                finished = finished.cpu().numpy()
                if finished.all() or step == self.max_new_tokens - 1:
                    break
                keep = np.flatnonzero(~finished)
                keep_t = torch.as_tensor(keep, device=next_tokens.device)
                output_cache(out).batch_select_indices(keep_t)
                keys_valid, next_position = keys_valid[keep_t], next_position[keep_t]
                next_tokens, active = next_tokens[keep_t], active[keep]
                keys_valid = torch.cat([keys_valid, keys_valid.new_ones((len(active), 1))], dim=1)
                out = self._forward(hidden=False, input_ids=next_tokens[:, None],
                                    attention_mask=self._model_mask(keys_valid[:, None, None, :],
                                                                    use_shared),
                                    position_ids=next_position[:, None], shared=shared,
                                    cache=output_cache(out))
                next_position = next_position + 1
        return result

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


def official_answer_tokens(tokenizer, answers: Sequence[str]) -> LabelTokens:
    """The released code's answer ids: the first token of each answer, without a leading space."""
    sequences = [tuple(tokenizer.encode(answer, add_special_tokens=False)) for answer in answers]
    if not all(sequences) or sequences[0][0] == sequences[1][0]:
        raise TokenizerError(
            f"The answers {answers[0]!r} and {answers[1]!r} start with the same token (or none) "
            "for this tokenizer; their scores cannot be told apart."
        )
    return LabelTokens(tuple(answers), tuple((seq[0],) for seq in sequences),
                       tuple((seq,) for seq in sequences), {})
