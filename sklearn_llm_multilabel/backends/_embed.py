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


#: texts per forward pass when texts of one token length are embedded together
BATCH_SIZE = 64


def _embed_one_length(model, rows: list[list[int]]) -> np.ndarray:
    """Unit-norm mean-pooled embeddings of token-id rows that all have the same length: no
    padding, so each row's numbers are those it gets on its own."""
    ids = torch.tensor(rows)
    hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    return torch.nn.functional.normalize(hidden.float().mean(dim=1), dim=-1).numpy()


def embed_texts(spec: str, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """Unit-norm embeddings of ``texts``, shape ``(n_texts, hidden_size)``, float32.

    Each text is the mean of its tokens' last hidden states, as
    sentence-transformers computes all-MiniLM-L6-v2's embeddings, scaled to
    unit length so that dot products are cosine similarities. Texts are
    embedded in batches of texts with the same number of tokens, so no text
    is padded and each embedding equals the text's embedding on its own (the
    tests check this to the bit): the demonstrations chosen with it never
    depend on the other texts of a call. Embeddings are kept in memory (per
    process) for the next call.
    """
    from tqdm.auto import tqdm

    model, tokenizer = _encoder(spec, show_progress)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with _state.LOCK:
        known = [_state.EMBEDDINGS.get((spec, t)) for t in texts]
    todo = list(dict.fromkeys(texts[i] for i, v in enumerate(known) if v is None))
    found: dict[str, np.ndarray] = {}
    if todo:
        encoded = tokenizer(todo, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(encoded):
            by_length.setdefault(len(row), []).append(i)
        with torch.inference_mode(), tqdm(total=len(todo), desc="Embedding", unit="text",
                                           disable=not show_progress) as bar:
            for rows in by_length.values():
                for start in range(0, len(rows), BATCH_SIZE):
                    part = rows[start:start + BATCH_SIZE]
                    vectors = _embed_one_length(model, [encoded[i] for i in part])
                    found.update((todo[i], v) for i, v in zip(part, vectors))
                    bar.update(len(part))
    with _state.LOCK:
        for text, vector in found.items():
            _state.EMBEDDINGS[(spec, text)] = vector
        while len(_state.EMBEDDINGS) > _state.MAX_EMBEDDINGS:
            _state.EMBEDDINGS.popitem(last=False)
    for i, vector in enumerate(known):
        out[i] = vector if vector is not None else found[texts[i]]
    return out
