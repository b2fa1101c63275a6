"""LoRA fine-tuning with peft, and scoring models with a trained adapter merged in.

Neither function modifies the loaded base model: training runs on a *view* of
it (new module, config and parameter objects that share the base weights'
storage, frozen), so the base's attention function, training flag and
``requires_grad`` flags stay as they are for every other estimator and
thread. A scoring model with an adapter is another view whose targeted
weight matrices alone are copies, with the adapter merged into them by peft.
The adapter's weights leave as NumPy arrays (``get_peft_model_state_dict``):
the merged model is never saved, so the quantisation flag a GGUF-loaded
model keeps (which blocks ``save_pretrained``) never matters.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import _state
from .._finetune import TrainingExample
from ._attention import prepare_model
from ._engine import cache_kwarg, output_cache
from ._load import LoadedModel
from ._seal import SealedEncoder, Span
from ._text import leading_special_ids

# peft asks transformers a deprecated question when it wraps a model; the answer is right and
# the deprecation is theirs to resolve: this one message is silenced, once, for the process
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated",
                        category=FutureWarning)

#: adapted scoring models kept per process (each holds copies of its targeted weights)
MAX_ADAPTED = 4


@dataclass(frozen=True)
class LoraSettings:
    """What decides a LoRA adapter, besides the data (all part of its key)."""

    rank: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...] | str | None
    epochs: int
    learning_rate: float
    batch_size: int
    max_length: int
    seed: int

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=(list(self.target_modules)
                                          if isinstance(self.target_modules, tuple)
                                          else self.target_modules),
                          bias="none", task_type="CAUSAL_LM")


def _view(model, clone: Sequence[str] = ()):
    """New module objects over ``model``'s weights; names in ``clone`` get copied weights.

    Every parameter becomes a new, frozen ``Parameter`` on the same storage,
    so peft may flip flags on the view without touching the base.
    """
    cloned = set(clone)
    memo = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in memo:
            continue  # tied weights stay tied
        data = param.data.clone() if name in cloned else param.data
        memo[id(param)] = torch.nn.Parameter(data, requires_grad=False)
    for buf in model.buffers():
        memo[id(buf)] = buf
    return copy.deepcopy(model, memo)


def encode_examples(tokenizer, examples: Sequence[TrainingExample], add_bos: bool | None,
                    prefix: str, max_length: int, *, prefix_data: Sequence[Span] = (),
                    query_data: Sequence[Sequence[Span]] | None = None):
    """Token ids of the shared prefix, and (query, answer) per example, as the engine encodes them.

    The prefix (special tokens, instruction and demonstrations) and each query
    are encoded on their own, as the scoring engine does, sealed as it seals
    them: ``prefix_data`` and ``query_data`` (one list of spans per example;
    None: no text spans) are the character spans that hold texts, where a
    special-token spelling is read as characters (:mod:`._seal`). A query and
    answer longer than ``max_length`` lose the query's start.

    Returns
    -------
    prefix_ids : list of int
    pairs : list of (query ids, answer ids)
    n_cut : int
        Examples whose query lost its start.
    """
    sealer = SealedEncoder(tokenizer)
    prefix_ids = leading_special_ids(tokenizer, add_bos) + sealer.encode_one(prefix, prefix_data)
    spans = [()] * len(examples) if query_data is None else list(query_data)
    queries = sealer.encode([ex.prompt for ex in examples], spans)
    pairs, cut = [], 0
    for ex, query in zip(examples, queries, strict=True):
        answer = list(tokenizer.encode(ex.answer, add_special_tokens=False))
        room = max_length - len(answer)
        if room < 1:
            raise ValueError(f"finetune_max_length={max_length} leaves no room for a query before "
                             f"an answer of {len(answer)} tokens; raise it.")
        if len(query) > room:
            query, cut = query[-room:], cut + 1
        pairs.append((query, answer))
    return prefix_ids, pairs, cut


def forward_logits(peft_model, prefix_ids: list[int], ids: torch.Tensor, mask: torch.Tensor,
                   cache_name: str) -> torch.Tensor:
    """Logits of a batch of queries after the shared prefix, with gradients through both.

    The prefix is encoded once (batch of one) and its keys and values are
    repeated for every row, so a step costs one prefix plus the queries
    instead of the prefix once per row; the result equals encoding every row
    in full (tested).
    """
    if not prefix_ids:
        return peft_model(input_ids=ids, attention_mask=mask).logits
    prefix = torch.tensor([prefix_ids], device=ids.device)
    out = peft_model(input_ids=prefix, use_cache=True)
    cache = output_cache(out)
    for layer in cache.layers:
        layer.batch_repeat_interleave(ids.shape[0])
    full = torch.cat([torch.ones(ids.shape[0], len(prefix_ids), dtype=mask.dtype,
                                 device=mask.device), mask], dim=1)
    return peft_model(input_ids=ids, attention_mask=full, use_cache=True,
                      **{cache_name: cache}).logits


def _batch(pairs, weights, indices, pad_id: int, device):
    rows = [pairs[i][0] + pairs[i][1] for i in indices]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for k, i in enumerate(indices):
        prompt, answer = pairs[i]
        n = len(prompt) + len(answer)
        ids[k, :n] = torch.tensor(prompt + answer)
        mask[k, :n] = 1
        labels[k, len(prompt):n] = torch.tensor(answer)
    w = torch.tensor([weights[i] for i in indices], dtype=torch.float32)
    return ids.to(device), mask.to(device), labels.to(device), w.to(device)


def _weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """Mean over answer tokens per example, weighted, over the batch (see the module doc)."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
        reduction="none").view(target.shape)
    counts = (target != -100).sum(1).clamp(min=1)
    per_example = per_token.sum(1) / counts
    return (per_example * weights).sum() / (len(weights) * scale)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier of optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up over the first ``warmup`` steps, then linear decay, with no
    step at rate 0: warm-up step ``s`` gets ``(s + 1) / (warmup + 1)``, decay
    step ``s`` gets ``(total - s) / (total - warmup)``. (A schedule that starts
    at 0, as transformers' linear warm-up does, wastes the first step, which is
    the only one of a one-step fit: that adapter never left its zero init.)

    Examples
    --------
    >>> [lr_factor(s, 1, 0) for s in range(1)]
    [1.0]
    >>> [round(lr_factor(s, 5, 1), 2) for s in range(5)]
    [0.5, 1.0, 0.75, 0.5, 0.25]
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def train_lora(loaded: LoadedModel, examples: Sequence[TrainingExample], *, prefix: str,
               add_bos: bool | None, settings: LoraSettings, show_progress: bool = False,
               prefix_data: Sequence[Span] = (), query_data: Sequence[Sequence[Span]] | None = None,
               ) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Train a LoRA adapter on ``examples`` (loss on the answer tokens only).

    Every example is the shared ``prefix`` followed by its query and answer;
    the prefix is encoded once per optimiser step (:func:`forward_logits`).

    AdamW with linear warm-up (first 10% of steps) and decay (:func:`lr_factor`:
    every step, the first and the last included, has a non-zero rate), examples shuffled
    each epoch by a generator seeded with ``settings.seed``; the adapter's
    initialisation is seeded too, inside a forked RNG so the process's global
    torch RNG is left as it was. On CUDA the base stays in its dtype (bf16 by
    default) and the adapter trains in float32.

    Returns
    -------
    weights : dict of str to ndarray
        The adapter's state dict (``get_peft_model_state_dict``), float32.
    losses : ndarray
        The training loss of every optimiser step.
    n_cut : int
        Queries that lost their start to ``settings.max_length``.
    """
    from peft import get_peft_model, get_peft_model_state_dict
    from tqdm.auto import tqdm

    tokenizer = loaded.tokenizer
    prefix_ids, pairs, n_cut = encode_examples(tokenizer, examples, add_bos, prefix,
                                               settings.max_length, prefix_data=prefix_data,
                                               query_data=query_data)
    weights = [ex.weight for ex in examples]
    scale = float(np.mean(weights))
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    view = _view(loaded.load(show_progress=show_progress))
    view.config._attn_implementation = "sdpa"  # the view's own config: plain attention, with grads
    cache_name = cache_kwarg(view)
    devices = [loaded.device] if loaded.device.type == "cuda" else []
    losses = []
    # the adapter's initialisation and dropout draw from torch's global RNG: seeded, in a fork
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        peft_model = get_peft_model(view, settings.peft_config())
        peft_model.train()
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
        steps_per_epoch = -(-len(pairs) // settings.batch_size)
        total = steps_per_epoch * settings.epochs
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, total // 10))
        rng = np.random.default_rng(settings.seed)
        with tqdm(total=total, desc="LoRA fine-tuning", unit="step",
                  disable=not show_progress) as bar:
            for _ in range(settings.epochs):
                order = rng.permutation(len(pairs))
                for start in range(0, len(order), settings.batch_size):
                    ids, mask, labels, w = _batch(pairs, weights,
                                                  order[start:start + settings.batch_size],
                                                  pad_id, loaded.device)
                    logits = forward_logits(peft_model, prefix_ids, ids, mask, cache_name)
                    loss = _weighted_loss(logits, labels, w, scale)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    losses.append(float(loss.detach()))
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
                    bar.update(1)
    # the embeddings are never adapted: no look-up of the base's config files for them
    state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    arrays = {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in state.items()}
    _state.count("adapters_trained")
    return arrays, np.asarray(losses), n_cut


def adapter_bytes(weights: dict[str, np.ndarray]) -> int:
    """Size of an adapter's weights in bytes."""
    return int(sum(a.nbytes for a in weights.values()))


def _base_parameter(adapter_name: str) -> str:
    """The base weight an adapter tensor belongs to.

    ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` →
    ``model.layers.0.self_attn.q_proj.weight``.
    """
    module = adapter_name.split(".lora_")[0]
    return module.removeprefix("base_model.model.") + ".weight"


def adapted_model(base: LoadedModel, key: str, weights: dict[str, np.ndarray],
                  settings: LoraSettings) -> LoadedModel:
    """The base model with the adapter ``key`` merged in, for scoring (memoised per process).

    Only the weight matrices the adapter targets are copied; every other
    tensor is shared with the base. The fingerprint combines the base's and
    the adapter's, so step-cache keys of different adapters never mix.
    """
    memo_key = (key, base.fingerprint, str(base.device), str(base.dtype))
    with _state.LOCK:
        found = _state.ADAPTED.get(memo_key)
        if found is not None:
            _state.ADAPTED.move_to_end(memo_key)
            return found

    def build():
        from peft import get_peft_model, set_peft_model_state_dict

        targets = sorted({_base_parameter(name) for name in weights})
        view = _view(base.model, clone=targets)
        peft_model = get_peft_model(view, settings.peft_config())
        tensors = {k: torch.from_numpy(v).to(base.device) for k, v in weights.items()}
        result = set_peft_model_state_dict(peft_model, tensors)
        if result.unexpected_keys:
            raise ValueError(f"the adapter's weights do not fit this model: unexpected "
                             f"{sorted(result.unexpected_keys)[:3]}.")
        merged = peft_model.merge_and_unload()
        merged.to(device=base.device, dtype=base.dtype)
        merged.eval()
        prepare_model(merged)
        return merged

    fp = hashlib.sha256(f"{base.fingerprint}\nlora:{key}".encode()).hexdigest()
    # built when it first scores: a prediction served from the step cache needs no weights
    entry = LoadedModel(None, base.tokenizer, fp, f"{base.spec}+lora:{key[:12]}", base.device,
                        base.dtype, config=base.config, loader=build)
    with _state.LOCK:
        entry = _state.ADAPTED.setdefault(memo_key, entry)
        _state.ADAPTED.move_to_end(memo_key)
        while len(_state.ADAPTED) > MAX_ADAPTED:
            _state.ADAPTED.popitem(last=False)
    return entry
