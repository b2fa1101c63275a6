"""Step-scoring engine for transformers causal LMs.

For each text, one greedy decoding of the label list, recording the label
scores at every generated position. The prompt prefix (instruction and
demonstrations) is encoded once and attended by every row without being copied
(:mod:`._attention`). Texts are batched longest first; inside a batch, the rows
are laid out as ``[padding | query]`` after the prefix with explicit position
ids, so each row sees exactly the positions it would see alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .._prompts import PromptParts, parse_labels
from ..exceptions import ContextLengthError, PerformanceWarning, TokenizerError, TruncationWarning
from ._attention import shared_prefix, supports_shared_prefix
from ._base import _STATS, StepRecord
from ._labels import build_label_tokens, find_steps, reduce_label_logits
from ._load import LoadedModel

ENGINE_VERSION = "1"


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


@dataclass
class _Batch:
    """Model inputs of one batch and the bookkeeping needed to extend it."""

    input_ids: torch.Tensor
    mask: torch.Tensor  # (B, 1, Q, K) bool, True: attend
    positions: torch.Tensor
    keys_valid: torch.Tensor  # (B, K) bool
    next_position: torch.Tensor  # (B,)
    query_length: int  # columns before the tree tokens
    use_shared: bool


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

    The prefix's keys and values are encoded once and held with batch size 1;
    rows are left-padded queries whose position ids continue from the prefix,
    attending to the prefix through :func:`shared_prefix` (or, for models that
    cannot, with the prefix prepended to every row), so each row sees exactly
    the positions it would see alone.
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
        self._shared_ok = supports_shared_prefix(self.model)
        self._warned_plain = False
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

    def _forward(self, hidden: bool = True, keep: int | torch.Tensor = 1, **kwargs):
        """One forward; logits only at the ``keep`` last positions (int) or at those indices."""
        _STATS["forward_calls"] += 1
        out = self.model(**kwargs, use_cache=True, output_hidden_states=hidden, return_dict=True,
                         **({"logits_to_keep": keep} if self._keeps_logits else {}))
        if not self._keeps_logits:
            out.logits = out.logits[:, -keep:] if isinstance(keep, int) else out.logits[:, keep]
        return out

    def _encode_prefix(self) -> None:
        if self._prefix_kv is not None or not self.prefix_ids:
            return
        ids = torch.tensor([self.prefix_ids], device=self.loaded.device)
        with evaluation_mode(self.model):
            out = self._forward(hidden=False, input_ids=ids, attention_mask=torch.ones_like(ids))
        _STATS["prefix_encodings"] += 1
        self._prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    def _uses_shared_prefix(self, use_prefix_cache: bool) -> bool:
        if not (use_prefix_cache and self.prefix_ids):
            return False
        if not self._shared_ok:
            if not self._warned_plain:
                warnings.warn(
                    f"{type(self.model).__name__} does not dispatch attention through "
                    "transformers' AttentionInterface (or uses sliding-window layers); the prompt "
                    "prefix is re-encoded for every batch, which is much slower.",
                    PerformanceWarning, stacklevel=4,
                )
                self._warned_plain = True
            return False
        return True

    @contextlib.contextmanager
    def _attending(self, use_shared: bool):
        """Evaluation mode, plus attention over the encoded prefix when ``use_shared``."""
        with evaluation_mode(self.model):
            if not use_shared:
                yield
                return
            self._encode_prefix()
            with shared_prefix(self.model, self._prefix_kv):
                yield

    def _layout(self, rows: list[list[int]], use_shared: bool, tree: SuffixTree | None = None):
        """First-forward inputs for rows laid out ``[padding | (prefix) row | tree]``.

        With ``use_shared`` the prefix is attended through :func:`shared_prefix`
        and is not part of the rows; otherwise it is prepended to every row.
        Returns a :class:`_Batch`; ``tree`` tokens (identical for every row)
        each see the whole row and their own ancestors.
        """
        lead = [] if use_shared else self.prefix_ids
        start = len(self.prefix_ids) - len(lead)
        seqs = [lead + r for r in rows]
        B, S = len(seqs), max(len(r) for r in seqs)
        T = len(tree.tokens) if tree is not None else 0
        lengths = torch.tensor([len(r) for r in seqs])
        ids = torch.full((B, S + T), self._pad_id, dtype=torch.long)
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
        device = self.loaded.device
        return _Batch(ids.to(device), mask.to(device), positions.to(device), valid.to(device),
                      (start + lengths).to(device), S, use_shared)

    def _model_mask(self, mask: torch.Tensor, use_shared: bool) -> torch.Tensor:
        """Boolean masks for our attention; additive float masks for the model's own."""
        if use_shared:
            return mask
        dtype = self.model.dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            ~mask, torch.finfo(dtype).min)

    def _first_forward(self, batch: _Batch, **kwargs):
        """The batch's first forward, into a fresh cache that holds the rows' own keys."""
        from transformers import DynamicCache

        return self._forward(input_ids=batch.input_ids,
                             attention_mask=self._model_mask(batch.mask, batch.use_shared),
                             position_ids=batch.positions,
                             past_key_values=DynamicCache(config=self.model.config), **kwargs)

    #: tokens after the query that every row carries (decoded tokens, or the suffix tree)
    def _tail_tokens(self) -> int:
        return self._reserved

    #: tokens after the query in the first forward (none when decoding, the tree for breakdowns)
    def _prefill_tail(self) -> int:
        return 0

    #: kept logits per row (one position when decoding, one per suffix for breakdowns)
    def _kept_positions(self) -> int:
        return 1

    def _row_bytes(self, query_length: int) -> int:
        """Estimated peak memory of one row of a forward whose longest query has this length."""
        config = self.model.config
        get = lambda *names, default=0: next(  # noqa: E731
            (getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), default)
        hidden = get("hidden_size", "n_embd")
        layers = get("num_hidden_layers", "n_layer", default=1)
        heads = get("num_attention_heads", "n_head", default=1)
        kv_heads = get("num_key_value_heads", default=heads)
        inner = get("intermediate_size", "n_inner", default=4 * hidden)
        head_dim = get("head_dim", default=hidden // max(heads, 1))
        size = torch.finfo(self.model.dtype).bits // 8
        q = query_length + self._tail_tokens()
        context = len(self.prefix_ids) + q
        attention = 3 * heads * q * context * 4  # float32 scores, weights and mask, one layer at a time
        own_cache = 2 * layers * kv_heads * head_dim * q * size
        activations = q * (4 * hidden + 3 * inner) * size + (layers + 1) * q * hidden * size
        logits = self._kept_positions() * config.vocab_size * 4 * 2
        return attention + own_cache + activations + logits

    def _memory_budget(self) -> int:
        """Bytes a batch may use: half the free GPU memory, or a quarter of available RAM (≤ 2 GiB)."""
        device = torch.device(self.loaded.device)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free * 0.5)
        available = 8 * 2**30
        try:
            with open("/proc/meminfo") as f:
                available = next(int(line.split()[1]) * 1024 for line in f
                                 if line.startswith("MemAvailable:"))
        except (OSError, StopIteration):
            pass
        return int(min(available // 4, 2 * 2**30))

    #: padded tokens per forward under ``batch_size="auto"``: on a CPU, matrix products are
    #: efficient from a few hundred rows on, and every padded token is wasted work
    CPU_TOKENS_PER_FORWARD = 512
    GPU_TOKENS_PER_FORWARD = 32768

    def auto_batch_size(self, query_length: int) -> int:
        """Rows per forward for queries of at most ``query_length`` tokens.

        The smallest of: what fits the memory budget (:meth:`_memory_budget`),
        a budget of padded tokens per forward (512 on CPU, 32,768 on GPU), and
        64 rows on CPU or 1,024 on GPU. Long texts thus go in small batches
        and short ones in large batches, which keeps padding low.
        """
        on_gpu = torch.device(self.loaded.device).type == "cuda"
        tokens = self.GPU_TOKENS_PER_FORWARD if on_gpu else self.CPU_TOKENS_PER_FORWARD
        rows = min(1024 if on_gpu else 64,
                   tokens // (query_length + self._prefill_tail()),
                   self._memory_budget() // self._row_bytes(query_length))
        return int(max(1, rows))

    def batches(self, query_ids: Sequence[Sequence[int]], batch_size: int | str) -> list[list[int]]:
        """Indices of ``query_ids`` in batches, longest first.

        ``batch_size="auto"`` sizes each batch from free memory and the length
        of its longest query (:meth:`auto_batch_size`), so batches of short
        texts hold more rows.
        """
        order = sorted(range(len(query_ids)), key=lambda i: -len(query_ids[i]))
        chunks, start = [], 0
        budget = None if batch_size == "auto" else int(batch_size)
        while start < len(order):
            size = budget or self.auto_batch_size(len(query_ids[order[start]]))
            chunks.append(order[start : start + size])
            start += size
        return chunks

    def _run_batches(self, query_ids, batch_size, score_batch, on_batch, show_progress):
        """Score ``query_ids`` in :meth:`batches` and return records in input order."""
        results: list = [None] * len(query_ids)
        bar = tqdm(total=len(query_ids), unit="text", desc="Scoring", disable=not show_progress)
        try:
            for chunk in self.batches(query_ids, batch_size):
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

    Rows whose label list has ended leave the batch (``early_exit``, on by
    default; off only to measure what it saves).

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
        self.early_exit = True
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
        """Greedy decoding of a batch; finished rows leave the batch (early exit)."""
        B, L1, steps = len(rows), len(self.label_names) + 1, self.max_new_tokens
        use_shared = self._uses_shared_prefix(use_prefix_cache)
        batch = self._layout(rows, use_shared)
        scores = np.zeros((B, steps, L1), dtype=np.float32)
        masses = np.zeros((B, steps), dtype=np.float32)
        hiddens = np.zeros((B, steps, self.model.config.hidden_size), dtype=np.float32)
        gen = np.zeros((B, steps), dtype=np.int64)
        done = np.zeros(B, dtype=bool)
        n_valid = np.full(B, -1)
        n_positions = np.full(B, steps)
        active = np.arange(B)  # rows of the batch still decoding, in cache order
        keys_valid, next_position = batch.keys_valid, batch.next_position
        with self._attending(use_shared):
            out = self._first_forward(batch)
            for step in range(steps):
                logits = out.logits[:, -1, :].float()
                hiddens[active, step] = out.hidden_states[-1][:, -1, :].float().cpu().numpy()
                scores[active, step] = reduce_label_logits(logits, self._idx, self._valid).cpu().numpy()
                mass = torch.log_softmax(logits, dim=-1)[:, self._all_label_ids].exp().sum(-1)
                masses[active, step] = mass.cpu().numpy()
                next_tokens = logits.argmax(dim=-1)
                gen[active, step] = next_tokens.cpu().numpy()
                finished = self._update_stops(gen, step, active, done, n_valid)
                n_positions[active[finished]] = step + 1
                if done.all() or step == steps - 1:
                    break
                keep = np.flatnonzero(~finished)
                if self.early_exit and len(keep) < len(active):
                    keep_t = torch.as_tensor(keep, device=next_tokens.device)
                    out.past_key_values.batch_select_indices(keep_t)
                    keys_valid, next_position = keys_valid[keep_t], next_position[keep_t]
                    next_tokens, active = next_tokens[keep_t], active[keep]
                keys_valid = torch.cat([keys_valid, keys_valid.new_ones((len(active), 1))], dim=1)
                out = self._forward(input_ids=next_tokens[:, None],
                                    attention_mask=self._model_mask(keys_valid[:, None, None, :],
                                                                    use_shared),
                                    position_ids=next_position[:, None],
                                    past_key_values=out.past_key_values)
                next_position = next_position + 1
        _STATS["texts_scored"] += B
        return [
            self._make_record(gen[b, : n_positions[b]], scores[b, : n_positions[b]],
                              masses[b, : n_positions[b]], hiddens[b, : n_positions[b]],
                              int(n_valid[b]) if done[b] else int(n_positions[b]))
            for b in range(B)
        ]

    def _update_stops(self, gen: np.ndarray, step: int, active: np.ndarray, done: np.ndarray,
                      n_valid: np.ndarray) -> np.ndarray:
        """Mark active rows whose last token ends the label list; returns which did (per active).

        ``n_valid`` gets the number of positions before the stop.
        """
        finished = np.zeros(len(active), dtype=bool)
        for a, b in enumerate(active):
            if done[b]:  # kept in the batch when early_exit is off
                continue
            ids = gen[b, : step + 1].tolist()
            if ids[-1] in self._stop_ids:
                done[b], n_valid[b], finished[a] = True, step, True
                continue
            text = self.tokenizer.decode(ids)
            cut = self._stop_offset(text)
            if cut is None:
                continue
            k = step
            while k > 0 and len(self.tokenizer.decode(ids[:k])) > cut:
                k -= 1
            done[b], n_valid[b], finished[a] = True, k, True
        return finished

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
        # copies: a view would keep the batch's whole (B, steps, hidden) array alive in the cache
        return StepRecord(
            position_scores=np.array(scores[:n_positions], dtype=np.float32, copy=True),
            generated_ids=np.array(gen[:n_positions], dtype=np.int64, copy=True),
            n_valid=int(n_valid),
            step_positions=positions,
            step_labels=labels,
            label_mass=np.array(mass[:n_positions], dtype=np.float32, copy=True),
            hidden=np.array(hidden[first], dtype=np.float32, copy=True),
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
