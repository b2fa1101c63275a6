"""One lever at a time: what each engine choice is worth on the step-scoring pass.

Scores the same MFRC texts with the same fitted 10-shot prompt, in one run,
switching one thing per row of the table against the baseline (shared-prefix
attention, copy-free decoding, early exit, ``batch_size="auto"``, float32):

* ``prefix re-encoded``: the prompt prefix is part of every row (no reuse);
* ``decode via SDPA copy``: decoding steps attend through a per-call copy of
  the prefix keys instead of the copy-free product;
* ``no early exit``: finished rows stay in the batch until all are done;
* ``batch N`` / ``batch auto``: other batch sizes;
* ``int8 dynamic``: ``torch.ao.quantization.quantize_dynamic`` on the linear
  layers (CPU only), with its effect on the step distributions reported
  separately (max abs difference of the label scores, texts whose generated
  labels change).

Every variant is timed with no cache (the engine is called directly), the
variants interleaved within each repeat and their order rotated from one
repeat to the next (so that no variant always runs first); the table gives
median time relative to the baseline. The int8 time includes quantising the
model.

Run::

    .venv/bin/python benchmarks/levers.py --n 48
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
import warnings

import numpy as np
import torch
from _common import machine

from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch


def differences(records, reference):
    diff = max(float(np.abs(a.position_scores[: len(b.position_scores)]
                            - b.position_scores[: len(a.position_scores)]).max())
               for a, b in zip(records, reference))
    other = sum(a.parsed != b.parsed for a, b in zip(records, reference))
    return diff, other


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated variants to leave out")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    train, test = train_test_split_bunch(load_mfrc(), train_size=2000, test_size=args.n,
                                         random_state=0)
    clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names, n_shots=10,
                                  random_state=0, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.data, train.target).predict_proba(test.data[:1])
    scorer = clf._scorer()
    queries = scorer.prepare_queries(list(test.data))
    print(f"{args.n} MFRC texts, prefix {len(scorer.prefix_ids)} tokens\n{machine()}\n")

    def run(batch_size="auto", use_prefix_cache=True, on=scorer):
        return on.score_queries(queries, batch_size=batch_size, use_prefix_cache=use_prefix_cache)

    def with_options(**options):  # engine options are scorer parameters, not shared flags
        other = clf._scorer(**options)
        return lambda: run(on=other)

    def quantized_run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(scorer.model), {torch.nn.Linear}, dtype=torch.qint8)
        loaded = dataclasses.replace(scorer.loaded, model=quantized,
                                     fingerprint=scorer.loaded.fingerprint + "-int8")
        return run(on=clf._scorer(loaded=loaded))

    baseline = "baseline (shared prefix, copy-free decoding, early exit, batch auto)"
    variants = {
        baseline: run,
        "prefix re-encoded for every batch": lambda: run(use_prefix_cache=False),
        "decode via SDPA over a prefix copy": with_options(decode_queries=0),
        "no early exit": with_options(early_exit=False),
        **{f"batch {size}": (lambda size=size: run(batch_size=size)) for size in (1, 4, 16, 32)},
    }
    if torch.device(scorer.loaded.device).type == "cpu":
        variants["int8 dynamic quantisation"] = quantized_run
    variants = {k: v for k, v in variants.items() if k == baseline or k.split(" ")[0] not in skip}
    times: dict[str, list[float]] = {k: [] for k in variants}
    records: dict[str, list] = {}
    names = list(variants)
    for repeat in range(args.repeats):  # interleaved, the order rotated every repeat
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            start = time.perf_counter()
            records[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    base_time = float(np.median(times[baseline]))
    rows = [(name, float(np.median(t)),
             differences(records[name], records[baseline]) if name.startswith("int8") else None)
            for name, t in times.items()]

    print("\n| variant | s/text | time / baseline | max abs score diff | texts with other labels |")
    print("|---|---|---|---|---|")
    for name, seconds, diff in rows:
        extra = (f"{diff[0]:.2e} | {diff[1]} of {args.n}") if diff else "– | –"
        print(f"| {name} | {seconds / args.n:.3f} | {seconds / base_time:.2f} | {extra} |")


if __name__ == "__main__":
    main()
