"""Attention over one shared prompt prefix without per-row copies.

Every text is scored after the same prefix (instruction and demonstrations,
hundreds of tokens). Expanding the prefix's key/value cache to a batch and
letting the cache concatenate new keys onto it copies ``batch x prefix`` keys
and values in every layer at every forward, which costs more than the
attention itself on a CPU. Here the prefix is held once, with batch size 1,
and an attention function registered with transformers'
``AttentionInterface`` computes, for each query row, one softmax over

* the shared prefix keys (visible to every row), and
* the row's own keys held in an ordinary cache, under an explicit 4-D
  boolean mask that the engine builds (causal, padding, or a tree of query
  suffixes).

The prefix enters the batched matrix products with the batch folded into the
query dimension, so it is never copied. Outside :func:`shared_prefix` the
registered function is plain SDPA, so a model whose implementation was left
switched (another thread) still computes standard attention.
"""

from __future__ import annotations

import contextlib
import threading

import torch

NAME = "sklml_shared_prefix"
_STATE = threading.local()
_REGISTERED = False


def _sdpa(*args, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(*args, **kwargs)


def shared_prefix_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                            **kwargs):
    """Attention over ``[shared prefix | own keys]``; plain SDPA when no prefix is set.

    ``query`` is ``(B, H, Q, D)``; ``key``/``value`` are the rows' own
    ``(B, KVH, S, D)``; ``attention_mask`` is a boolean ``(B, 1, Q, S)``
    (True: attend) over the own keys only. Returns ``(B, Q, H, D)`` as
    transformers' attention functions do.
    """
    prefix = getattr(_STATE, "prefix", None)
    if prefix is None:
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                     **kwargs)
    pk, pv = prefix[module.layer_idx]  # (1, KVH, P, D)
    B, H, Q, D = query.shape
    KVH = key.shape[1]
    g = H // KVH  # query head h reads key/value head h // g (transformers' repeat_kv)
    scale = D**-0.5 if scaling is None else scaling
    q = query.reshape(B, KVH, g * Q, D)
    # prefix: fold the batch into the rows of one (KVH, B*g*Q, D) x (KVH, D, P) product
    q_flat = q.transpose(0, 1).reshape(KVH, B * g * Q, D)
    s_pre = torch.matmul(q_flat, pk[0].transpose(-1, -2)).float().mul_(scale)  # (KVH, BgQ, P)
    s_own = torch.matmul(q, key.transpose(-1, -2)).float().mul_(scale)  # (B, KVH, gQ, S)
    if attention_mask is not None:
        visible = attention_mask[:, :, None, :, :].expand(B, 1, g, Q, -1).reshape(B, 1, g * Q, -1)
        s_own = s_own.masked_fill(~visible, float("-inf"))
    m_pre = s_pre.amax(-1).view(KVH, B, g * Q).transpose(0, 1)  # (B, KVH, gQ)
    m = torch.maximum(m_pre, s_own.amax(-1))
    e_pre = torch.exp(s_pre - m.transpose(0, 1).reshape(KVH, B * g * Q)[..., None])
    e_own = torch.exp(s_own - m[..., None])
    denom = e_pre.sum(-1).view(KVH, B, g * Q).transpose(0, 1) + e_own.sum(-1)
    out_pre = torch.matmul(e_pre.to(pv.dtype), pv[0])  # (KVH, BgQ, D)
    out = out_pre.view(KVH, B, g * Q, D).transpose(0, 1).float()
    out = out + torch.matmul(e_own.to(value.dtype), value).float()
    out = (out / denom[..., None]).to(query.dtype)
    return out.view(B, KVH, g, Q, D).reshape(B, H, Q, D).transpose(1, 2).contiguous(), None


def register() -> None:
    """Register :func:`shared_prefix_attention` with transformers (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    _REGISTERED = True


def supports_shared_prefix(model) -> bool:
    """Whether ``model`` dispatches attention through transformers' interface.

    Models with sliding-window or hybrid layer types are excluded: the
    function above sees every prefix key.
    """
    config = getattr(model, "config", None)
    if config is None or not getattr(model, "_supports_attention_backend", False):
        return False
    types = set(getattr(config, "layer_types", None) or ())
    if types:
        if types - {"full_attention"}:
            return False
    elif getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return hasattr(config, "_attn_implementation")


@contextlib.contextmanager
def shared_prefix(model, layers: list[tuple[torch.Tensor, torch.Tensor]]):
    """Within the block, ``model`` attends to ``layers`` (per-layer prefix keys, values) first."""
    register()
    config = model.config
    previous = config._attn_implementation
    _STATE.prefix = layers
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _STATE.prefix = None
