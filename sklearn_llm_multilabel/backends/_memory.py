"""The memory model behind ``batch_size="auto"``: bytes per row and the budget per forward."""

from __future__ import annotations

import torch

#: padded tokens per forward under ``batch_size="auto"``: on a CPU, matrix products are
#: efficient from a few hundred rows on, and every padded token is wasted work
CPU_TOKENS_PER_FORWARD = 512
GPU_TOKENS_PER_FORWARD = 32768


def _config_int(config, *names: str, default: int = 0) -> int:
    return next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)),
                default)


def row_bytes(config, dtype: torch.dtype, *, query_tokens: int, context_tokens: int,
              kept_positions: int) -> int:
    """Estimated peak memory of one row of a forward.

    Parameters
    ----------
    config : transformers config
    dtype : torch.dtype
        The model's dtype.
    query_tokens : int
        Tokens the row carries (query and what follows it).
    context_tokens : int
        Keys each query attends to (prefix + the row's own tokens).
    kept_positions : int
        Positions whose logits are kept.
    """
    hidden = _config_int(config, "hidden_size", "n_embd")
    layers = _config_int(config, "num_hidden_layers", "n_layer", default=1)
    heads = _config_int(config, "num_attention_heads", "n_head", default=1)
    kv_heads = _config_int(config, "num_key_value_heads", default=heads)
    inner = _config_int(config, "intermediate_size", "n_inner", default=4 * hidden)
    head_dim = _config_int(config, "head_dim", default=hidden // max(heads, 1))
    size = torch.finfo(dtype).bits // 8
    q = query_tokens
    attention = 3 * heads * q * context_tokens * 4  # float32 scores, weights and mask, one layer
    own_cache = 2 * layers * kv_heads * head_dim * q * size
    activations = q * (4 * hidden + 3 * inner) * size + (layers + 1) * q * hidden * size
    logits = kept_positions * config.vocab_size * 4 * 2
    return attention + own_cache + activations + logits


def memory_budget(device: torch.device) -> int:
    """Bytes a batch may use: half the free GPU memory, or a quarter of available RAM (≤ 2 GiB)."""
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


def rows_per_forward(device: torch.device, tokens_per_row: int, budget_bytes: int,
                     bytes_per_row: int) -> int:
    """Rows per forward: the smallest of the memory fit, the padded-token budget and a row cap.

    The token budget is 512 padded tokens per forward on CPU and 32,768 on
    GPU; the row cap 64 on CPU and 1,024 on GPU.

    Examples
    --------
    >>> rows_per_forward(torch.device("cpu"), 100, 10**9, 10**6)
    5
    """
    on_gpu = device.type == "cuda"
    tokens = GPU_TOKENS_PER_FORWARD if on_gpu else CPU_TOKENS_PER_FORWARD
    rows = min(1024 if on_gpu else 64, tokens // max(tokens_per_row, 1),
               budget_bytes // max(bytes_per_row, 1))
    return int(max(1, rows))
