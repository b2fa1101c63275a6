"""Sentence embeddings from an encoder checkpoint: mean-pooled last hidden states, unit norm.

The encoder (the embedded all-MiniLM-L6-v2 by default, or any encoder folder or
hub id in the local cache) is loaded once per process and only read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import _state
from ._encoder import load_encoder

#: tokens per text the encoder reads (all-MiniLM-L6-v2 was trained on 256)
MAX_LENGTH = 256


def _encoder(spec: str, show_progress: bool):
    with _state.LOCK:
        found = _state.ENCODERS.get(spec)
    if found is None:
        model, tokenizer = load_encoder(spec, show_progress=show_progress)
        with _state.LOCK:
            found = _state.ENCODERS.setdefault(spec, (model.eval(), tokenizer))
    return found


def embed_texts(spec: str, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """Unit-norm embeddings of ``texts``, shape ``(n_texts, hidden_size)``, float32.

    Each text is the mean of its tokens' last hidden states, as
    sentence-transformers computes all-MiniLM-L6-v2's embeddings, scaled to
    unit length so that dot products are cosine similarities. Each text is
    encoded on its own (no padding, no batch), so its embedding, and the
    demonstrations chosen with it, never depend on the other texts of a call;
    embeddings are kept in memory (per process) for the next call.
    """
    from tqdm.auto import tqdm

    model, tokenizer = _encoder(spec, show_progress)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with _state.LOCK:
        known = [_state.EMBEDDINGS.get((spec, t)) for t in texts]
    todo = [i for i, v in enumerate(known) if v is None]
    with torch.inference_mode():
        for i in tqdm(todo, desc="Embedding", unit="text", disable=not show_progress or not todo):
            enc = tokenizer(texts[i], truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            mean = model(**enc).last_hidden_state.float().mean(dim=1)
            known[i] = torch.nn.functional.normalize(mean, dim=-1)[0].numpy()
    with _state.LOCK:
        for i in todo:
            _state.EMBEDDINGS[(spec, texts[i])] = known[i]
        while len(_state.EMBEDDINGS) > _state.MAX_EMBEDDINGS:
            _state.EMBEDDINGS.popitem(last=False)
    for i, vector in enumerate(known):
        out[i] = vector
    return out
