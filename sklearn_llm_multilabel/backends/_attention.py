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

Decoding steps (one query per row) fold the batch into the query dimension
of one matrix product against the single prefix copy, so the prefix is never
copied; forwards with many queries per row (the texts themselves, breakdown
suffix trees) run PyTorch's fused SDPA over keys concatenated for that layer
call only, which is faster there despite the copy.

Thread safety: nothing here is switched per call. :func:`prepare_model` sets
the model's attention implementation to this function once, when the
library prepares a model it owns (a loaded checkpoint, or its own view of a
registered model); called without a prefix the function *is* PyTorch's SDPA,
so every other use of the model computes standard attention. The prefix
travels with each forward call as the keyword argument :data:`PREFIX_KWARG`
(transformers passes extra forward keywords down to the attention function),
so concurrent calls with different prefixes never see each other's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._state import LOCK

NAME = "sklml_shared_prefix"
#: forward keyword that carries the :class:`SharedPrefix` of a call
PREFIX_KWARG = "sklml_prefix"
_REGISTERED = False

#: queries per row up to which the copy-free path is used (decoding); above, SDPA over a copy
DECODE_QUERIES = 4


@dataclass(frozen=True)
class SharedPrefix:
    """The encoded prompt prefix that one forward call attends to.

    Attributes
    ----------
    layers : tuple of (Tensor, Tensor)
        Per-layer prefix keys and values, each ``(1, KVH, P, D)``.
    decode_queries : int, default=4
        Queries per row up to which the copy-free decoding path is used; an
        engine option (benchmarks set 0 to measure the copy path).
    """

    layers: tuple
    decode_queries: int = DECODE_QUERIES


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
    prefix = kwargs.pop(PREFIX_KWARG, None)
    if prefix is None:
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                     **kwargs)
    pk, pv = prefix.layers[module.layer_idx]  # (1, KVH, P, D)
    B, H, Q, D = query.shape
    scale = D**-0.5 if scaling is None else scaling
    if Q > prefix.decode_queries:
        return _prefill(query, key, value, attention_mask, pk, pv, scale)
    return _decode(query, key, value, attention_mask, pk, pv, scale)


def _prefill(query, key, value, attention_mask, pk, pv, scale):
    """Many queries per row: fused SDPA over ``[prefix | own]`` keys concatenated for this call.

    The copy lives for one layer call only (the cache keeps the rows' own keys);
    with many queries, SDPA's fused kernel outweighs it.
    """
    B, H, Q, D = query.shape
    keys = torch.cat([pk.expand(B, -1, -1, -1), key], dim=2)
    values = torch.cat([pv.expand(B, -1, -1, -1), value], dim=2)
    mask = torch.cat([attention_mask.new_ones((B, 1, Q, pk.shape[2])), attention_mask], dim=3)
    gqa = {}
    if key.shape[1] != H:  # grouped-query attention: native on CPU, repeated heads elsewhere
        if query.device.type == "cpu":
            gqa = {"enable_gqa": True}
        else:
            keys = keys.repeat_interleave(H // key.shape[1], dim=1)
            values = values.repeat_interleave(H // key.shape[1], dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask,
                                                           scale=scale, **gqa)
    return out.transpose(1, 2).contiguous(), None


def _decode(query, key, value, attention_mask, pk, pv, scale):
    """Few queries per row: one softmax over prefix and own keys without copying the prefix.

    The batch is folded into the query dimension of a single
    ``(KVH, B*g*Q, D) x (KVH, D, P)`` product against the one prefix copy.
    """
    B, H, Q, D = query.shape
    KVH = key.shape[1]
    g = H // KVH  # query head h reads key/value head h // g (transformers' repeat_kv)
    q = query.reshape(B, KVH, g * Q, D)
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
    """Register :func:`shared_prefix_attention` with transformers (idempotent, thread-safe)."""
    global _REGISTERED
    with LOCK:
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


def prepare_model(model) -> bool:
    """Switch a library-owned model to :func:`shared_prefix_attention`, once.

    Called when the library loads a model or makes its own view of a
    registered one, never while scoring. Without a prefix the function is
    SDPA, so the model's other uses are unchanged. Returns whether the model
    can attend to a shared prefix.
    """
    if not supports_shared_prefix(model):
        return False
    register()
    model.config._attn_implementation = NAME
    return True


def is_prepared(model) -> bool:
    """Whether :func:`prepare_model` switched ``model`` (the engine's shared-prefix path)."""
    config = getattr(model, "config", None)
    return supports_shared_prefix(model) and getattr(config, "_attn_implementation", None) == NAME
