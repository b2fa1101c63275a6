"""What every scorer shares: one encoded prompt prefix and batched queries after it.

The prefix's keys and values are encoded once per scorer and held with
batch size 1; rows are left-padded queries whose position ids continue from
the prefix (:mod:`._layout`), attending to the prefix through shared-prefix
attention (:mod:`._attention`) or, for models that cannot, with the prefix
prepended to every row, so each row sees exactly the positions it would see
alone.

Thread safety: a scorer may be used by several threads at once. Scoring
never changes the model, its config or any module global; the encoded
prefix is built once under the scorer's own lock and then only read, and it
reaches the attention function as a keyword of each forward call.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .. import _state
from .._keys import record_key
from .._warnings import warn
from ..exceptions import ContextLengthError, PerformanceWarning
from ._attention import DECODE_QUERIES, PREFIX_KWARG, SharedPrefix, is_prepared
from ._layout import Batch, layout_rows
from ._load import LoadedModel
from ._memory import memory_budget, row_bytes, rows_per_forward
from ._seal import SealedEncoder
from ._text import check_encodable, leading_special_ids, truncate_texts
from ._tree import SuffixTree

ENGINE_VERSION = "1"


@contextlib.contextmanager
def inference(model):
    """No autograd for the duration, on a model in evaluation mode.

    Library-owned models are put in evaluation mode when they are prepared
    and are never switched back, so nothing is saved or restored here (a
    save/restore would race with other threads). A library-owned model found
    in training mode (someone called ``.train()`` on it) is put back in
    evaluation mode, under the process lock.
    """
    if model.training:
        with _state.LOCK:
            model.eval()
    with torch.inference_mode():
        yield model


def cache_kwarg(model) -> str:
    """The keyword under which ``model.forward`` takes its key/value cache.

    transformers 5 renamed ``past_key_values`` to ``cache`` (the old name is
    deprecated); a model whose forward names neither gets the old name.
    """
    # the class's forward: an instance attribute (a hook, a spy) may hide the real signature
    parameters = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(out):
    """The key/value cache of a forward's output, under either transformers name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def context_limit(config) -> int | None:
    """The model's context window in tokens, from its configuration (None: not stated)."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class PrefixEngine:
    """One encoded prompt prefix and batched queries after it (see the module docstring).

    Parameters
    ----------
    loaded : LoadedModel
    prefix : str
        Instruction and demonstrations, shared by every query.
    add_bos : bool or None
        Special tokens before the prefix: None follows the tokenizer's default
        (:func:`._text.leading_special_ids`), True puts its BOS token, False
        nothing.
    max_text_tokens : int
    reserved_tokens : int
        Tokens after each query (decoded tokens, or the suffix tree).
    decode_queries : int, default=4
        Queries per row up to which shared-prefix attention takes its
        copy-free path (an engine option; results are equal either way).
    """

    def __init__(self, loaded: LoadedModel, prefix: str, add_bos: bool | None, max_text_tokens: int,
                 reserved_tokens: int, *, decode_queries: int = DECODE_QUERIES,
                 prefix_data: Sequence[tuple[int, int]] = ()):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.sealer = SealedEncoder(self.tokenizer)
        self.max_text_tokens = int(max_text_tokens)
        self.decode_queries = int(decode_queries)
        self._pad_id = self._choose_pad_id()
        self.prefix_ids = (leading_special_ids(self.tokenizer, add_bos)
                           + self.sealer.encode_one(prefix, prefix_data))
        self._reserved = int(reserved_tokens)
        self._context_limit = self._find_context_limit()
        if self._context_limit and len(self.prefix_ids) + self._reserved >= self._context_limit:
            raise ContextLengthError(
                f"The prompt prefix (instruction and demonstrations) has {len(self.prefix_ids)} "
                f"tokens, which with {self._reserved} tokens for queries and answers does not "
                f"fit the model's context of {self._context_limit} tokens. Use fewer shots "
                "(n_shots) or a smaller max_text_tokens."
            )
        self._prefix: SharedPrefix | None = None
        self._prefix_lock = threading.Lock()
        self._warned_plain = False

    # What needs the weights is read when the model first runs: a scorer whose texts are all
    # cached never loads them (``LoadedModel.model`` loads on first access).
    @property
    def model(self):
        return self.loaded.model

    @functools.cached_property
    def _shared_ok(self) -> bool:
        return is_prepared(self.model)

    @functools.cached_property
    def _keeps_logits(self) -> bool:
        return "logits_to_keep" in inspect.signature(type(self.model).forward).parameters

    @functools.cached_property
    def _cache_kwarg(self) -> str:
        return cache_kwarg(self.model)

    def _choose_pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id,
                          self.tokenizer.unk_token_id):
            if candidate is not None:
                return int(candidate)
        return 0  # padded positions are masked out; any id works

    def _find_context_limit(self) -> int | None:
        return context_limit(self.loaded.config)

    def truncate_texts(self, texts: Sequence[str]) -> list[str]:
        """Cut texts to ``max_text_tokens`` tokens, warning with the count of cut texts."""
        return truncate_texts(self.tokenizer, texts, self.max_text_tokens, sealer=self.sealer)

    def query_data(self, query: str) -> list[tuple[int, int]]:
        """Character span of the text inside a query (the whole query unless a scorer says)."""
        return [(0, len(query))]

    def encode_queries(self, queries: Sequence[str]) -> list[list[int]]:
        """Token ids of the queries (their texts sealed), checked against the context window."""
        check_encodable(queries)
        query_ids = self.sealer.encode(queries, [self.query_data(q) for q in queries])
        self._check_context(query_ids)
        return query_ids

    def query_key(self, query: str) -> str:
        """Content address of one query's record (model, full prompt, settings, text).

        A query whose text holds a special-token spelling gets its own key:
        such texts are encoded sealed, so a record written before prompts were
        sealed (where the spelling was a control token) is never reused.
        """
        return record_key(self.fingerprint, query,
                          self.sealer.needs_sealing(query, self.query_data(query)))

    def prompt_ids(self, query: str) -> list[int]:
        """Every token id the model reads for one query: the prefix, then the query."""
        return list(self.prefix_ids) + self.encode_queries([query])[0]

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

    def _forward(self, hidden: bool = True, keep: int | torch.Tensor = 1,
                 shared: SharedPrefix | None = None, **kwargs):
        """One forward; logits only at the ``keep`` last positions (int) or at those indices.

        ``shared``: the encoded prefix the rows attend to, passed down to the
        attention function with this call only.
        """
        _state.count("forward_calls")
        extra = {PREFIX_KWARG: shared} if shared is not None else {}
        if "cache" in kwargs:  # the model's own name for it
            extra[self._cache_kwarg] = kwargs.pop("cache")
        if self._keeps_logits:
            extra["logits_to_keep"] = keep
        out = self.model(**kwargs, use_cache=True, output_hidden_states=hidden, return_dict=True,
                         **extra)
        if not self._keeps_logits:
            out.logits = out.logits[:, -keep:] if isinstance(keep, int) else out.logits[:, keep]
        return out

    def _shared_prefix(self) -> SharedPrefix:
        """The encoded prefix, encoded once per scorer (under its lock), then only read."""
        with self._prefix_lock:
            if self._prefix is None:
                ids = torch.tensor([self.prefix_ids], device=self.loaded.device)
                with inference(self.model):
                    out = self._forward(hidden=False, input_ids=ids,
                                        attention_mask=torch.ones_like(ids))
                _state.count("prefix_encodings")
                self._prefix = SharedPrefix(
                    tuple((layer.keys, layer.values) for layer in output_cache(out).layers),
                    self.decode_queries,
                )
            return self._prefix

    def _uses_shared_prefix(self, use_prefix_cache: bool) -> bool:
        if not (use_prefix_cache and self.prefix_ids):
            return False
        if not self._shared_ok:
            if not self._warned_plain:
                warn(
                    f"{type(self.model).__name__} does not dispatch attention through "
                    "transformers' AttentionInterface (or uses sliding-window layers); the prompt "
                    "prefix is re-encoded for every batch, which is much slower.",
                    PerformanceWarning,
                )
                self._warned_plain = True
            return False
        return True

    def _layout(self, rows: list[list[int]], use_shared: bool, tree: SuffixTree | None = None) -> Batch:
        return layout_rows(rows, self.prefix_ids, self._pad_id, self.loaded.device, use_shared, tree)

    def _model_mask(self, mask: torch.Tensor, use_shared: bool) -> torch.Tensor:
        """Boolean masks for our attention; additive float masks for the model's own."""
        if use_shared:
            return mask
        dtype = self.model.dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            ~mask, torch.finfo(dtype).min)

    def _first_forward(self, batch: Batch, shared: SharedPrefix | None, **kwargs):
        """The batch's first forward, into a fresh cache that holds the rows' own keys."""
        from transformers import DynamicCache

        return self._forward(input_ids=batch.input_ids,
                             attention_mask=self._model_mask(batch.mask, batch.use_shared),
                             position_ids=batch.positions, shared=shared,
                             cache=DynamicCache(config=self.model.config), **kwargs)

    def _tail_tokens(self) -> int:
        """Tokens after the query that every row carries (decoded tokens, or the suffix tree)."""
        return self._reserved

    def _prefill_tail(self) -> int:
        """Tokens after the query in the first forward (none when decoding, the tree for breakdowns)."""
        return 0

    def _kept_positions(self) -> int:
        """Kept logits per row (one position when decoding, one per suffix for breakdowns)."""
        return 1

    def _row_bytes(self, query_length: int) -> int:
        """Estimated peak memory of one row of a forward whose longest query has this length."""
        q = query_length + self._tail_tokens()
        return row_bytes(self.model.config, self.model.dtype, query_tokens=q,
                         context_tokens=len(self.prefix_ids) + q,
                         kept_positions=self._kept_positions())

    def _memory_budget(self) -> int:
        return memory_budget(torch.device(self.loaded.device))

    def auto_batch_size(self, query_length: int) -> int:
        """Rows per forward for queries of at most ``query_length`` tokens.

        The smallest of: what fits the memory budget, a budget of padded
        tokens per forward (512 on CPU, 32,768 on GPU), and 64 rows on CPU or
        1,024 on GPU (:func:`._memory.rows_per_forward`). Long texts thus go
        in small batches and short ones in large batches, which keeps padding
        low.
        """
        return rows_per_forward(torch.device(self.loaded.device),
                                query_length + self._prefill_tail(), self._memory_budget(),
                                self._row_bytes(query_length))

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

    def score_queries(
        self,
        queries: Sequence[str],
        *,
        batch_size: int | str = 8,
        use_prefix_cache: bool = True,
        on_batch: Callable[[list[int], list], None] | None = None,
        show_progress: bool = False,
    ) -> list:
        """Score every query and return one record per query, in order.

        Parameters
        ----------
        queries : sequence of str
            Outputs of ``prepare_queries``.
        batch_size : int or "auto", default=8
        use_prefix_cache : bool, default=True
            False re-encodes the whole prompt (the reference computation that
            the cached path must equal).
        on_batch : callable or None
            Called with (indices, records) as each batch completes, e.g. to
            persist it.
        show_progress : bool, default=False
            A tqdm bar with texts/s.
        """
        query_ids = self.encode_queries(queries)
        if query_ids:  # weights read now, with transformers' bars as show_progress says
            self.loaded.load(show_progress=show_progress)
        results: list = [None] * len(query_ids)
        bar = tqdm(total=len(query_ids), unit="text", desc="Scoring", disable=not show_progress)
        try:
            for chunk in self.batches(query_ids, batch_size):
                records = self._score_rows([query_ids[i] for i in chunk], use_prefix_cache)
                for i, rec in zip(chunk, records):
                    results[i] = rec
                if on_batch is not None:
                    on_batch(chunk, records)
                bar.update(len(chunk))
        finally:
            bar.close()
        return results

    def _score_rows(self, rows: list[list[int]], use_prefix_cache: bool) -> list:
        """Records of one batch of token rows (implemented by each scorer)."""
        raise NotImplementedError
