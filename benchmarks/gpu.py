"""GPU check and throughput: results against CPU float32, a batch-size sweep, and the floor.

Needs only what the package ships: the embedded model (or any local
checkpoint or ``.gguf`` file passed with ``--model``) and the illustrative
topic texts, varied into ``--n`` distinct texts (``"<text> (#i)"``) so no text
is served from a cache. Meant to finish in under 5 minutes on one GPU.

1. Agreement: ``--check-n`` texts scored on the CPU in float32 (the
   reference) and on the GPU in each ``--dtypes``; per aggregation the largest
   absolute probability difference and the share of texts whose generated
   label list is the same. float32 must stay within ``--tolerance`` (default
   1e-3: GPU kernels sum in another order than the CPU's); lower precisions
   are reported, not checked.
2. Throughput: ``predict_proba`` (max) on ``--n`` texts with a cold cache for
   each batch size of ``--batch-sizes`` (``auto`` included), in the first
   dtype of ``--dtypes``.
3. Floor: one batched forward over each text's tokens plus its generated
   label tokens after the encoded prefix (as ``throughput.py``), at the best
   batch size; the table reports each run's texts/s against it.

Exit status 1 when float32 disagrees beyond the tolerance. Run::

    .venv/bin/python benchmarks/gpu.py --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import torch
from _common import machine
from throughput import run_floor

from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache
from sklearn_llm_multilabel.datasets import load_illustrative_topics

AGGREGATIONS = ("first", "max", "unary")


def varied_texts(texts: list[str], n: int) -> list[str]:
    """``n`` distinct texts built from ``texts`` (cycled, numbered)."""
    return [f"{texts[i % len(texts)]} (#{i})" for i in range(n)]


def fitted(model: str, device: str, dtype: str | None, batch_size, n_shots: int, train):
    clf = LLMMultiLabelClassifier(model=model, labels=train.label_names, n_shots=n_shots,
                                  device=device, dtype=dtype, batch_size=batch_size,
                                  random_state=0, show_progress=False)
    return clf.fit(train.data, train.target)


def scores(clf, texts: list[str]) -> dict:
    out = {a: clf.set_params(aggregation=a).predict_proba(texts) for a in AGGREGATIONS}
    out["labels"] = [tuple(t["parsed_labels"]) for t in clf.predict_steps(texts)]
    return out


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cuda", help="the device to check against the CPU")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--n", type=int, default=2000, help="texts for the throughput sweep")
    parser.add_argument("--check-n", type=int, default=40, help="texts for the CPU check")
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--batch-sizes", default="16,64,256,1024,auto")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a dry run of the script", file=sys.stderr)
        return 2
    dtypes = args.dtypes.split(",")
    sizes = [s if s == "auto" else int(s) for s in args.batch_sizes.split(",")]
    ds = load_illustrative_topics()
    train_idx = np.arange(0, len(ds.data), 2)
    from sklearn_llm_multilabel.datasets import subset

    train = subset(ds, train_idx)
    check_texts = varied_texts(list(ds.data), args.check_n)
    texts = varied_texts(list(ds.data), args.n)
    print(f"{machine()}\nmodel {args.model}, {args.n_shots} shots, device {args.device}")
    results: dict = {"machine": machine(), "model": args.model, "device": args.device}
    warnings.simplefilter("ignore")

    # 1. agreement with the CPU float32 reference
    reference = scores(fitted(args.model, "cpu", "float32", "auto", args.n_shots, train),
                       check_texts)
    agreement, failed = {}, False
    for dtype in dtypes:
        found = scores(fitted(args.model, args.device, dtype, "auto", args.n_shots, train),
                       check_texts)
        row = {a: float(np.abs(found[a] - reference[a]).max()) for a in AGGREGATIONS}
        row["same_labels"] = float(np.mean([a == b for a, b in zip(found["labels"],
                                                                     reference["labels"])]))
        agreement[dtype] = row
        if dtype == "float32" and max(row[a] for a in AGGREGATIONS) > args.tolerance:
            failed = True
    results["agreement"] = agreement
    print(f"\nAgainst CPU float32 on {args.check_n} texts (largest |Δp|; float32 tolerance "
          f"{args.tolerance:g}):\n\n| dtype | " + " | ".join(AGGREGATIONS)
          + " | same generated labels |\n|---" * 1 + "|---" * (len(AGGREGATIONS) + 1) + "|")
    for dtype, row in agreement.items():
        print(f"| {dtype} | " + " | ".join(f"{row[a]:.1e}" for a in AGGREGATIONS)
              + f" | {100 * row['same_labels']:.0f}% |")

    # 2. batch-size sweep, 3. floor
    clf = fitted(args.model, args.device, dtypes[0], "auto", args.n_shots, train)
    clf.predict_proba(texts[:4])  # weights loaded, prefix encoded
    sweep = {}
    for size in sizes:
        clear_memory_cache()
        clf.set_params(batch_size=size, aggregation="max")
        sweep[str(size)] = args.n / timed(lambda: clf.predict_proba(texts))
        print(f"  batch size {size}: {sweep[str(size)]:.0f} texts/s", flush=True)
    best = max(sweep, key=sweep.get)
    scorer = clf._scorer()
    records = clf._records(texts)
    query_ids = scorer.encode_queries(scorer.prepare_queries(texts))
    floor = args.n / timed(lambda: run_floor(scorer, query_ids, records,
                                             best if best == "auto" else int(best)))
    results.update({"sweep_texts_per_s": sweep, "floor_texts_per_s": floor, "dtype": dtypes[0],
                    "n": args.n})
    print(f"\n{args.n} texts, {dtypes[0]}:\n\n| batch size | texts/s | of the floor |\n|---|---|---|")
    for size, rate in sweep.items():
        print(f"| {size} | {rate:.0f} | {rate / floor:.2f} |")
    print(f"| floor (batch size {best}) | {floor:.0f} | 1.00 |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if failed:
        print(f"\nfloat32 differs from the CPU by more than {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
