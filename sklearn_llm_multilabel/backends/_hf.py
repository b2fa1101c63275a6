"""Step-scoring engine for transformers causal LMs: greedy decoding of the label list.

For each text, one greedy decoding of the label list, recording the label
scores at every generated position. The prompt prefix (instruction and
demonstrations) is encoded once and attended by every row without being
copied (:mod:`._engine`, :mod:`._attention`); texts are batched longest
first.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence

import numpy as np
import torch

from .. import _state
from .._prompts import PROTOCOLS, PromptParts, parse_labels
from ..store._records import StepRecord
from ._attention import DECODE_QUERIES
from ._engine import ENGINE_VERSION, PrefixEngine, inference, output_cache
from ._labels import build_label_tokens, find_steps, reduce_label_logits
from ._load import LoadedModel
from ._text import (
    check_tokenizer,
    default_max_new_tokens,
    end_ids,
    leading_special_ids,
    truncate_texts,
)
from ._tree import SuffixTree

__all__ = ["ENGINE_VERSION", "PrefixEngine", "StepScorer", "SuffixTree", "check_tokenizer",
           "default_max_new_tokens", "truncate_texts"]


class StepScorer(PrefixEngine):
    """Scores texts with one fitted prompt: the only object that runs the model.

    Thread-safe: several threads may score with one scorer (or several
    scorers on one model) at once; nothing shared is modified while scoring.

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
    early_exit : bool, default=True
        Rows whose label list has ended leave the batch (off only to measure
        what it saves; results are equal).
    decode_queries : int, default=4
        See :class:`~._engine.PrefixEngine`.
    protocol : {"library", "official"}, default="library"
        ``"library"``: first-token variants of each label (word-initial
        surface forms and in-context tokens), decoding stops at a newline or
        the example prefix, steps read from the generated ids, labels parsed
        leniently. ``"official"``: as the paper's released code, a single
        in-context token per label, decoding stops only at the example prefix
        (or the end token), and steps are the first occurrence of each label's
        token in the *re-tokenised* prompt + cut output; hard labels are the
        comma-separated items of the cut output, stripped and lower-cased.
    label_variants, stop_at_newline, retokenized_steps, official_parse : bool or str or None
        Each of the protocol's choices on its own (None: the protocol's), so
        that the effect of every departure can be measured apart
        (``benchmarks/fidelity.py``): ``label_variants`` is ``"word"`` or
        ``"in_context"``; ``stop_at_newline`` ends decoding at a newline;
        ``retokenized_steps`` finds steps in the re-tokenised output;
        ``official_parse`` reads hard labels as the released code does.
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
        *,
        early_exit: bool = True,
        decode_queries: int = DECODE_QUERIES,
        protocol: str = "library",
        label_variants: str | None = None,
        stop_at_newline: bool | None = None,
        retokenized_steps: bool | None = None,
        official_parse: bool | None = None,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
        self.protocol = protocol
        official = protocol == "official"
        self.choices = {
            "label_variants": label_variants or ("in_context" if official else "word"),
            "stop_at_newline": (not official) if stop_at_newline is None else bool(stop_at_newline),
            "retokenized_steps": official if retokenized_steps is None else bool(retokenized_steps),
            "official_parse": official if official_parse is None else bool(official_parse),
        }
        self.max_new_tokens = int(max_new_tokens)
        self.early_exit = bool(early_exit)
        super().__init__(loaded, parts.prefix, parts.add_bos, max_text_tokens,
                         reserved_tokens=self.max_new_tokens, decode_queries=decode_queries,
                         prefix_data=parts.prefix_data)
        self.parts = parts
        self.label_names = list(label_names)
        self.none_label = none_label
        self.label_format = label_format
        self.label_tokens = build_label_tokens(
            self.tokenizer, self.label_names, none_label,
            answer_lead=answer_lead, label_format=label_format,
            variants=self.choices["label_variants"],
        )
        idx, valid = self.label_tokens.index_matrix()
        self._idx = torch.as_tensor(idx, device=loaded.device)
        self._valid = torch.as_tensor(valid, device=loaded.device)
        self._all_label_ids = torch.as_tensor(
            sorted({i for ids in self.label_tokens.first_ids for i in ids}), device=loaded.device
        )
        self._table = self.label_tokens.token_to_labels()
        self.fingerprint = self._fingerprint()

    @functools.cached_property
    def _stop_ids(self) -> set[int]:
        """Ids that end decoding: the end-of-sequence ids that stop ``generate`` (the official
        protocol's stop), or every special id when decoding also stops at a newline."""
        if self.choices["stop_at_newline"]:
            return set(self.tokenizer.all_special_ids)
        return end_ids(self.model, self.tokenizer)

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
            "protocol": self.protocol,
            "choices": self.choices,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    record_type = StepRecord

    def check_record(self, record: StepRecord) -> None:
        """Raise ValueError when a (cached) record does not fit this scorer's labels and model."""
        n_columns = len(self.label_names) + 1
        if record.position_scores.shape[1] != n_columns:
            raise ValueError(f"record has {record.position_scores.shape[1]} label columns; "
                             f"expected {n_columns}")
        hidden = getattr(self.loaded.config, "hidden_size", None)
        if isinstance(hidden, int) and record.hidden.shape[0] != hidden:
            raise ValueError(f"record has a hidden state of size {record.hidden.shape[0]}; "
                             f"expected {hidden}")
        if len(record.generated_ids) > self.max_new_tokens:
            raise ValueError("record has more positions than max_new_tokens")

    def prepare_queries(self, texts: Sequence[str]) -> list[str]:
        """Truncate texts to the token budget (warning with a count) and build queries."""
        return [self.parts.query(t) for t in self.truncate_texts(texts)]

    def query_data(self, query: str) -> list[tuple[int, int]]:
        """The text's span in a query built by :meth:`prepare_queries`."""
        return [self.parts.text_span(query)]

    def _score_rows(self, rows: list[list[int]], use_prefix_cache: bool) -> list[StepRecord]:
        """Greedy decoding of a batch; finished rows leave the batch (early exit).

        ``use_prefix_cache=False`` re-encodes the whole prompt for every batch
        (the reference computation that the cached path must equal).
        """
        B, L1, steps = len(rows), len(self.label_names) + 1, self.max_new_tokens
        use_shared = self._uses_shared_prefix(use_prefix_cache)
        shared = self._shared_prefix() if use_shared else None
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
        with inference(self.model):
            out = self._first_forward(batch, shared)
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
                    output_cache(out).batch_select_indices(keep_t)
                    keys_valid, next_position = keys_valid[keep_t], next_position[keep_t]
                    next_tokens, active = next_tokens[keep_t], active[keep]
                keys_valid = torch.cat([keys_valid, keys_valid.new_ones((len(active), 1))], dim=1)
                out = self._forward(input_ids=next_tokens[:, None],
                                    attention_mask=self._model_mask(keys_valid[:, None, None, :],
                                                                    use_shared),
                                    position_ids=next_position[:, None], shared=shared,
                                    cache=output_cache(out))
                next_position = next_position + 1
        _state.count("texts_scored", B)
        return [
            self._make_record(gen[b, : n_positions[b]], scores[b, : n_positions[b]],
                              masses[b, : n_positions[b]], hiddens[b, : n_positions[b]],
                              int(n_valid[b]) if done[b] else int(n_positions[b]),
                              self.prefix_ids + list(rows[b]))
            for b in range(B)
        ]

    def _update_stops(self, gen: np.ndarray, step: int, active: np.ndarray, done: np.ndarray,
                      n_valid: np.ndarray) -> np.ndarray:
        """Mark active rows whose last token ends the label list; returns which did (per active).

        ``n_valid`` gets the number of positions before the stop. Under the
        official protocol, the released code keeps every generated position up
        to the token that completes the example prefix (``generate`` stops
        after it), so ``n_valid`` counts them all; its steps are then found in
        the re-tokenised output cut at the prefix.
        """
        finished = np.zeros(len(active), dtype=bool)
        official = not self.choices["stop_at_newline"]
        for a, b in enumerate(active):
            if done[b]:  # kept in the batch when early_exit is off
                continue
            ids = gen[b, : step + 1].tolist()
            if ids[-1] in self._stop_ids:
                done[b], n_valid[b], finished[a] = True, step, True
                continue
            text = self.tokenizer.decode(ids, skip_special_tokens=official)
            cut = self._stop_offset(text)
            if cut is None:
                continue
            if official:
                done[b], n_valid[b], finished[a] = True, step + 1, True
                continue
            k = step
            while k > 0 and len(self.tokenizer.decode(ids[:k])) > cut:
                k -= 1
            done[b], n_valid[b], finished[a] = True, k, True
        return finished

    def _stop_offset(self, text: str) -> int | None:
        stops = ("\n", self.parts.stop_string) if self.choices["stop_at_newline"] \
            else (self.parts.stop_string,)
        offsets = [i for i in (text.find(stop) for stop in stops) if i >= 0]
        return min(offsets) if offsets else None

    def _official_steps(self, prompt_ids: list[int], cut_text: str,
                        n_valid: int) -> tuple[np.ndarray, np.ndarray]:
        """Steps as the released code finds them: first occurrence of each label's single
        token in the re-tokenised (decoded prompt + cut output), sorted by position.

        Positions index the generated positions; those at or beyond the stop
        are dropped, and a position shared by two labels counts once.
        """
        prompt_text = self.tokenizer.decode(prompt_ids, skip_special_tokens=True)
        written = prompt_text + cut_text  # special tokens skipped: any spelling left is text
        if self.sealer.needs_sealing(written, [(0, len(written))]):
            ids = leading_special_ids(self.tokenizer) + self.sealer.plain(written)
        else:
            ids = list(self.tokenizer(written)["input_ids"])
        ids = ids[len(prompt_ids):]
        first: dict[int, int] = {}
        for k, variants in enumerate(self.label_tokens.first_ids):
            hits = [ids.index(token) for token in variants if token in ids]
            if hits:
                first[k] = min(hits)
        positions, labels = [], []
        for k, position in sorted(first.items(), key=lambda item: (item[1], item[0])):
            if position < n_valid and position not in positions:
                positions.append(position)
                labels.append(k)
        return np.asarray(positions, dtype=np.int64), np.asarray(labels, dtype=np.int64)

    def _official_parse(self, cut_text: str) -> tuple[list[str], list[str]]:
        """Hard labels as the released code reads them: comma-separated, stripped, lower-cased."""
        items = [item.strip().lower() for item in cut_text.split(",")]
        lookup = {name.lower(): name for name in self.label_names}
        parsed = [name for name in self.label_names if name.lower() in items]
        unknown = [item for item in items
                   if item and item not in lookup and item != self.none_label.lower()]
        return parsed, unknown

    def _make_record(self, gen: np.ndarray, scores: np.ndarray, mass: np.ndarray,
                     hidden: np.ndarray, n_valid: int, prompt_ids: list[int]) -> StepRecord:
        n_positions = min(len(gen), n_valid + 1)  # keep the stop position for diagnostics
        text = self.tokenizer.decode(gen[:n_valid].tolist(), skip_special_tokens=True)
        cut = self._stop_offset(text)
        cut_text = text if cut is None else text[:cut]
        if self.choices["retokenized_steps"]:
            positions, labels = self._official_steps(prompt_ids, cut_text, n_valid)
        else:
            positions, labels = find_steps(gen, n_valid, self.label_tokens, self._table)
        if self.choices["official_parse"]:
            parsed, unknown = self._official_parse(cut_text)
        else:
            parsed, unknown = parse_labels(cut_text.strip(), self.label_names, self.label_format,
                                           self.none_label)
        text = cut_text.strip()
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
