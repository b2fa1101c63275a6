"""Step-scoring engine for transformers causal LMs.

For each text, one greedy decoding of the label list, recording the label
scores at every generated position. The prompt prefix (instruction and
demonstrations) is encoded once; its key/value cache is reused by every batch.
Texts are batched longest first; inside a batch, the rows are laid out as
``[prefix | padding | query]`` with explicit position ids, so each row sees
exactly the positions it would see alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .._prompts import PromptParts, parse_labels
from ..exceptions import ContextLengthError, TokenizerError, TruncationWarning
from ._base import _STATS, StepRecord
from ._labels import build_label_tokens, find_steps, reduce_label_logits
from ._load import LoadedModel

ENGINE_VERSION = "1"


@contextlib.contextmanager
def evaluation_mode(model):
    """Eval mode and no autograd for the duration; the training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


def default_max_new_tokens(n_labels: int) -> int:
    """18 new tokens, 25 for label sets of more than 8 labels (the paper's settings)."""
    return 18 if n_labels <= 8 else 25


def truncate_texts(tokenizer, texts: Sequence[str], budget: int, *, what: str = "texts") -> list[str]:
    """Cut texts to ``budget`` tokens; a :class:`TruncationWarning` counts the cut ones."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    out = [text if len(ids) <= budget else tokenizer.decode(ids[:budget])
           for text, ids in zip(texts, encoded)]
    n_truncated = sum(len(ids) > budget for ids in encoded)
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {len(texts)} {what} exceed max_text_tokens={budget} tokens and "
            "were truncated.",
            TruncationWarning,
            stacklevel=3,
        )
    return out


class PrefixEngine:
    """What every scorer shares: one encoded prompt prefix and batched queries after it.

    Rows of a batch are laid out as ``[prefix | padding | query]``: the
    prefix's key/value cache (encoded once) is expanded to the batch, queries
    are left-padded inside their own block, and position ids continue from the
    prefix, so each row sees exactly the positions it would see alone.
    """

    def __init__(self, loaded: LoadedModel, prefix: str, add_bos: bool, max_text_tokens: int,
                 reserved_tokens: int):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.max_text_tokens = int(max_text_tokens)
        self._pad_id = self._choose_pad_id()
        bos = self.tokenizer.bos_token_id
        self.prefix_ids = ([bos] if add_bos and bos is not None else []) + self._encode(prefix)
        self._reserved = int(reserved_tokens)
        self._context_limit = self._find_context_limit()
        if self._context_limit and len(self.prefix_ids) + self._reserved >= self._context_limit:
            raise ContextLengthError(
                f"The prompt prefix (instruction and demonstrations) has {len(self.prefix_ids)} "
                f"tokens, which with {self._reserved} tokens for queries and answers does not "
                f"fit the model's context of {self._context_limit} tokens. Use fewer shots "
                "(n_shots) or a smaller max_text_tokens."
            )
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _choose_pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id,
                          self.tokenizer.unk_token_id):
            if candidate is not None:
                return int(candidate)
        return 0  # padded positions are masked out; any id works

    def _find_context_limit(self) -> int | None:
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def truncate_texts(self, texts: Sequence[str]) -> list[str]:
        """Cut texts to ``max_text_tokens`` tokens, warning with the count of cut texts."""
        return truncate_texts(self.tokenizer, texts, self.max_text_tokens)

    def query_key(self, query: str) -> str:
        """Content address of one query's record (model, full prompt, settings, text)."""
        return hashlib.sha256((self.fingerprint + "\x00" + query).encode()).hexdigest()

    def _check_context(self, query_ids: list[list[int]]) -> None:
        if not self._context_limit:
            return
        for i, ids in enumerate(query_ids):
            total = len(self.prefix_ids) + len(ids) + self._reserved
            if total > self._context_limit:
                raise ContextLengthError(
                    f"Text {i}: prompt of {len(self.prefix_ids) + len(ids)} tokens plus "
                    f"{self._reserved} tokens for answers exceeds the model's context of "
                    f"{self._context_limit} tokens; lower max_text_tokens or n_shots."
                )

    def _forward(self, hidden: bool = True, **kwargs):
        _STATS["forward_calls"] += 1
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs, use_cache=True, output_hidden_states=hidden, return_dict=True)

    def _encode_prefix(self) -> None:
        if self._prefix_kv is not None or not self.prefix_ids:
            return
        ids = torch.tensor([self.prefix_ids], device=self.loaded.device)
        with evaluation_mode(self.model):
            out = self._forward(hidden=False, input_ids=ids, attention_mask=torch.ones_like(ids))
        _STATS["prefix_encodings"] += 1
        self._prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def _cache_from(self, layers, rows: torch.Tensor | int):
        """A DynamicCache holding ``rows`` of ``layers`` (an int: that many copies of row 0)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer_idx, (k, v) in enumerate(layers):
            if isinstance(rows, int):
                k, v = k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)
            else:
                k, v = k.index_select(0, rows), v.index_select(0, rows)
            cache.update(k, v, layer_idx)
        return cache

    def _layout(self, rows: list[list[int]], use_prefix_cache: bool):
        """Inputs for ``[prefix | padding | row]``: ids, attention, positions, cache, next positions."""
        B = len(rows)
        if use_prefix_cache:
            self._encode_prefix()
        if use_prefix_cache and self._prefix_kv is not None:
            P, past = len(self.prefix_ids), self._cache_from(self._prefix_kv, B)
        else:
            P, past = 0, None
            rows = [self.prefix_ids + r for r in rows]
        return self._pack(rows, P, past, torch.ones((B, P), dtype=torch.long),
                          torch.full((B,), P, dtype=torch.long))

    def _pack(self, rows: list[list[int]], P: int, past, past_attention: torch.Tensor,
              start_positions: torch.Tensor):
        """Left-pad ``rows`` after a cache of length ``P`` whose mask is ``past_attention``."""
        device = self.loaded.device
        B = len(rows)
        lengths = torch.tensor([len(r) for r in rows])
        S = int(lengths.max())
        input_ids = torch.full((B, S), self._pad_id, dtype=torch.long)
        attention = torch.cat([past_attention.cpu(), torch.zeros((B, S), dtype=torch.long)], 1)
        positions = torch.zeros((B, S), dtype=torch.long)
        start_positions = start_positions.cpu()
        for b, r in enumerate(rows):
            n = len(r)
            input_ids[b, S - n:] = torch.tensor(r)
            attention[b, P + S - n:] = 1
            positions[b, S - n:] = torch.arange(n) + start_positions[b]
        next_position = (start_positions + lengths).to(device)
        return (input_ids.to(device), attention.to(device), positions.to(device), past,
                next_position)

    def _run_batches(self, query_ids, batch_size, score_batch, on_batch, show_progress):
        """Score ``query_ids`` longest first in batches and return records in input order."""
        order = sorted(range(len(query_ids)), key=lambda i: -len(query_ids[i]))
        results: list = [None] * len(query_ids)
        bar = tqdm(total=len(order), unit="text", desc="Scoring", disable=not show_progress)
        try:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                records = score_batch([query_ids[i] for i in chunk])
                for i, rec in zip(chunk, records):
                    results[i] = rec
                if on_batch is not None:
                    on_batch(chunk, records)
                bar.update(len(chunk))
        finally:
            bar.close()
        return results


class StepScorer(PrefixEngine):
    """Scores texts with one fitted prompt: the only object that runs the model.

    Parameters
    ----------
    loaded : LoadedModel
    parts : PromptParts
        The fitted prompt (prefix, query template, stop string).
    label_names : sequence of str
    none_label : str
    label_format : {"comma", "json"}
    answer_lead : str
        Text between the query and the label list in demonstrations.
    max_new_tokens : int
    max_text_tokens : int
        Token budget per text; longer texts are truncated with a warning.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        parts: PromptParts,
        label_names: Sequence[str],
        none_label: str,
        label_format: str,
        answer_lead: str,
        max_new_tokens: int,
        max_text_tokens: int,
    ):
        self.max_new_tokens = int(max_new_tokens)
        super().__init__(loaded, parts.prefix, parts.add_bos, max_text_tokens,
                         reserved_tokens=self.max_new_tokens)
        self.parts = parts
        self.label_names = list(label_names)
        self.none_label = none_label
        self.label_format = label_format
        self.label_tokens = build_label_tokens(
            self.tokenizer, self.label_names, none_label,
            answer_lead=answer_lead, label_format=label_format,
        )
        idx, valid = self.label_tokens.index_matrix()
        self._idx = torch.as_tensor(idx, device=loaded.device)
        self._valid = torch.as_tensor(valid, device=loaded.device)
        self._all_label_ids = torch.as_tensor(
            sorted({i for ids in self.label_tokens.first_ids for i in ids}), device=loaded.device
        )
        self._table = self.label_tokens.token_to_labels()
        self._stop_ids = set(self.tokenizer.all_special_ids)
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        payload = {
            "engine": ENGINE_VERSION,
            "model": self.loaded.fingerprint,
            "prefix_ids": self.prefix_ids,
            "query": [self.parts.query_head, self.parts.query_tail],
            "stop": self.parts.stop_string,
            "labels": self.label_names,
            "none": self.none_label,
            "format": self.label_format,
            "variants": [list(ids) for ids in self.label_tokens.first_ids],
            "max_new_tokens": self.max_new_tokens,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncate texts to the token budget (warning with a count) and build queries."""
        return [self.parts.query(t) for t in self.truncate_texts(texts)]

    def score_queries(
        self,
        queries: Sequence[str],
        *,
        batch_size: int = 8,
        use_prefix_cache: bool = True,
        on_batch: Callable[[list[int], list[StepRecord]], None] | None = None,
        show_progress: bool = False,
    ) -> list[StepRecord]:
        """Decode every query and return one :class:`StepRecord` per query, in order.

        Parameters
        ----------
        queries : sequence of str
            Outputs of :meth:`prepare_queries`.
        batch_size : int, default=8
        use_prefix_cache : bool, default=True
            False re-encodes the whole prompt for every batch (the reference
            computation that the cached path must equal).
        on_batch : callable or None
            Called with (indices, records) as each batch completes, e.g. to
            persist it.
        show_progress : bool, default=False
            A tqdm bar with texts/s.
        """
        query_ids = self.tokenizer(list(queries), add_special_tokens=False)["input_ids"]
        self._check_context(query_ids)
        return self._run_batches(
            query_ids, batch_size, lambda rows: self._decode_batch(rows, use_prefix_cache),
            on_batch, show_progress,
        )

    def _decode_batch(self, rows: list[list[int]], use_prefix_cache: bool) -> list[StepRecord]:
        B = len(rows)
        input_ids, attention, positions, past, next_position = self._layout(rows, use_prefix_cache)
        scores, masses, hiddens, tokens = [], [], [], []
        done = np.zeros(B, dtype=bool)
        n_valid = np.full(B, -1)
        with evaluation_mode(self.model):
            out = self._forward(input_ids=input_ids, attention_mask=attention,
                                position_ids=positions, past_key_values=past)
            for step in range(self.max_new_tokens):
                logits = out.logits[:, -1, :].float()
                hiddens.append(out.hidden_states[-1][:, -1, :].float().cpu())
                scores.append(reduce_label_logits(logits, self._idx, self._valid).cpu())
                log_probs = torch.log_softmax(logits, dim=-1)
                masses.append(log_probs[:, self._all_label_ids].exp().sum(-1).cpu())
                next_tokens = logits.argmax(dim=-1)
                tokens.append(next_tokens.cpu())
                self._update_stops(tokens, done, n_valid)
                if done.all() or step == self.max_new_tokens - 1:
                    break
                attention = torch.cat([attention, attention.new_ones((B, 1))], dim=1)
                out = self._forward(input_ids=next_tokens[:, None], attention_mask=attention,
                                    position_ids=next_position[:, None],
                                    past_key_values=out.past_key_values)
                next_position = next_position + 1
        _STATS["texts_scored"] += B
        gen = torch.stack(tokens, dim=1).numpy()
        score_arr = torch.stack(scores, dim=1).numpy()
        mass_arr = torch.stack(masses, dim=1).numpy()
        hidden_arr = torch.stack(hiddens, dim=1).numpy()
        return [
            self._make_record(gen[b], score_arr[b], mass_arr[b], hidden_arr[b],
                              int(n_valid[b]) if done[b] else gen.shape[1])
            for b in range(B)
        ]

    def _update_stops(self, tokens: list[torch.Tensor], done: np.ndarray,
                      n_valid: np.ndarray) -> None:
        """Mark rows whose last token ends the label list; record how many positions count."""
        last = len(tokens) - 1
        for b in np.flatnonzero(~done):
            ids = [int(t[b]) for t in tokens]
            if ids[-1] in self._stop_ids:
                done[b], n_valid[b] = True, last
                continue
            text = self.tokenizer.decode(ids)
            cut = self._stop_offset(text)
            if cut is None:
                continue
            done[b] = True
            k = last
            while k > 0 and len(self.tokenizer.decode(ids[:k])) > cut:
                k -= 1
            n_valid[b] = k

    def _stop_offset(self, text: str) -> int | None:
        offsets = [i for i in (text.find("\n"), text.find(self.parts.stop_string)) if i >= 0]
        return min(offsets) if offsets else None

    def _make_record(self, gen: np.ndarray, scores: np.ndarray, mass: np.ndarray,
                     hidden: np.ndarray, n_valid: int) -> StepRecord:
        positions, labels = find_steps(gen, n_valid, self.label_tokens, self._table)
        n_positions = min(len(gen), n_valid + 1)  # keep the stop position for diagnostics
        text = self.tokenizer.decode(gen[:n_valid].tolist(), skip_special_tokens=True)
        cut = self._stop_offset(text)
        text = (text if cut is None else text[:cut]).strip()
        parsed, unknown = parse_labels(text, self.label_names, self.label_format, self.none_label)
        first = int(positions[0]) if len(positions) else 0
        return StepRecord(
            position_scores=np.ascontiguousarray(scores[:n_positions], dtype=np.float32),
            generated_ids=np.ascontiguousarray(gen[:n_positions], dtype=np.int64),
            n_valid=int(n_valid),
            step_positions=positions,
            step_labels=labels,
            label_mass=np.ascontiguousarray(mass[:n_positions], dtype=np.float32),
            hidden=np.ascontiguousarray(hidden[first], dtype=np.float32),
            text=text,
            parsed=tuple(parsed),
            unknown=tuple(unknown),
        )


def check_tokenizer(tokenizer, use_chat_template: bool) -> None:
    """Raise :class:`TokenizerError` when the tokenizer lacks what the prompt needs."""
    for attr in ("encode", "decode", "all_special_ids"):
        if not hasattr(tokenizer, attr):
            raise TokenizerError(f"The tokenizer has no {attr!r}; a transformers tokenizer is needed.")
    if use_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(
            "use_chat_template=True but the tokenizer has no chat template; use the raw "
            "completion prompt (use_chat_template=False) for this model."
        )
