"""Sentence embeddings for retrieved demonstrations: one text at a time against texts of one
token length batched together (no padding), side by side in one run, with the check that the
two give the same numbers to the bit.

Run::

    .venv/bin/python benchmarks/embedding.py --n-texts 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sklearn_llm_multilabel import _state
from sklearn_llm_multilabel.backends._embed import MAX_LENGTH, _encoder, embed_texts
from sklearn_llm_multilabel.backends._specs import DEFAULT_ENCODER
from sklearn_llm_multilabel.datasets import load_mfrc


def one_at_a_time(spec: str, texts: list[str]) -> np.ndarray:
    """The earlier way: each text encoded on its own."""
    model, tokenizer = _encoder(spec, False)
    out = []
    with torch.inference_mode():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            mean = model(**enc).last_hidden_state.float().mean(dim=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1)[0].numpy())
    return np.stack(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    args = parser.parse_args(argv)
    texts = list(dict.fromkeys(load_mfrc().data))[:args.n_texts]
    _encoder(args.encoder, False)  # loaded once, outside the timings
    start = time.perf_counter()
    alone = one_at_a_time(args.encoder, texts)
    t_alone = time.perf_counter() - start
    with _state.LOCK:
        _state.EMBEDDINGS.clear()
    start = time.perf_counter()
    batched = embed_texts(args.encoder, texts)
    t_batched = time.perf_counter() - start
    print(f"{len(texts)} MFRC texts, {args.encoder}, torch threads {torch.get_num_threads()}:\n")
    print("| way | seconds | ms per text |")
    print("|---|---|---|")
    for name, seconds in (("one text at a time", t_alone), ("one token length per batch", t_batched)):
        print(f"| {name} | {seconds:.1f} | {1000 * seconds / len(texts):.1f} |")
    print(f"\none at a time ÷ batched: {t_alone / t_batched:.2f}; identical embeddings: "
          f"{np.array_equal(alone, batched)} (largest difference {np.abs(alone - batched).max():.1e})")


if __name__ == "__main__":
    main()
