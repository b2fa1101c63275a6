"""Cost of the unary and binary breakdowns relative to max-over-generations.

Same model, same fitted prompt demonstrations, same texts, one run: each
strategy is timed with a cold cache (the in-process cache is cleared and no
disk cache is used), and the ratios are printed as a markdown table.

Run::

    .venv/bin/python benchmarks/breakdown_cost.py --n 50
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from sklearn_llm_multilabel import (
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
    reset_scoring_stats,
)
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=50, help="MFRC test texts")
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    train, test = train_test_split_bunch(load_mfrc(), train_size=2000, test_size=args.n,
                                         random_state=0)
    clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names,
                                  n_shots=args.n_shots, batch_size=args.batch_size,
                                  show_progress=False).fit(train.data, train.target)
    clf.predict_proba(test.data[:2])  # warm-up: load, encode prefixes
    for kind in ("unary", "binary"):
        clf.set_params(aggregation=kind).predict_proba(test.data[:2])
    times: dict[str, list[float]] = {"max": [], "unary": [], "binary": []}
    passes = {}
    for _ in range(args.repeats):
        for aggregation in times:
            clear_memory_cache()
            reset_scoring_stats()
            start = time.perf_counter()
            clf.set_params(aggregation=aggregation).predict_proba(test.data)
            times[aggregation].append(time.perf_counter() - start)
            passes[aggregation] = get_scoring_stats()["forward_calls"]
    median = {k: float(np.median(v)) for k, v in times.items()}
    L = len(train.label_names)
    print(f"\n{args.n} MFRC texts, {L} labels, model {args.model}, {args.n_shots} shots, "
          f"batch {args.batch_size}, {platform.machine()} CPU, median of {args.repeats}\n")
    print("| strategy | queries per text | s/text | forward passes | cost / max |")
    print("|---|---|---|---|---|")
    queries = {"max": "1 decoding", "unary": f"{L}", "binary": f"{(L + 1) * L // 2}"}
    for k, v in median.items():
        print(f"| {k} | {queries[k]} | {v / args.n:.3f} | {passes[k]} | {v / median['max']:.2f} |")
    return median


if __name__ == "__main__":
    main()
