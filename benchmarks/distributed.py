"""Scale-out costs, side by side in one run: the Ray runner and the two stores.

Part 1, the stores (no model): synthetic step records shaped like the
embedded model's (6 labels, 3 positions, hidden size 576 as float16 in the
sharded store), written and read back by key at 10k and 100k records; then
re-aggregation (max over steps) of everything read. Reports records/s,
files created and bytes per record, for the one-file-per-text folder and the
sharded Parquet store, whose shards are also read record by record (each
decoded and validated on its own) to compare with its column-wise reader.

Part 2, the runner (the embedded model, ``--n-texts`` MFRC texts, or the
illustrative set without ``../shared/data``): the local engine in this
process, Ray with 1 worker x 1 torch thread, Ray with 1 worker x 2 threads
and Ray with 2 workers x 1 thread. Texts/s and the ratio to local; every
Ray store is checked against the local probabilities.

Run::

    .venv/bin/python benchmarks/distributed.py --n-texts 500 --out docs/results/distributed.json
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def synthetic(i: int):
    from sklearn_llm_multilabel.store._records import StepRecord

    rng = np.random.default_rng(i)
    return StepRecord(position_scores=rng.normal(size=(3, 7)).astype(np.float32),
                      generated_ids=rng.integers(0, 49152, 3), n_valid=2,
                      step_positions=np.array([0]), step_labels=np.array([1]),
                      label_mass=rng.random(3).astype(np.float32),
                      hidden=rng.normal(size=576).astype(np.float32), text="care",
                      parsed=("care",), unknown=())


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def read_one_by_one(folder, keys) -> list:
    """Every record decoded and validated on its own (``from_payload``), as before the
    column-wise reader: the baseline it is compared with."""
    from sklearn_llm_multilabel.store._sharded import ShardedStore

    store = ShardedStore(folder)
    store.refresh()
    return [store._table(int(shard)).record(int(row), key, None)
            for key, (shard, row) in zip(keys, store._locate(keys))]


def bench_stores(n: int, batch: int = 1000) -> list[dict]:
    from sklearn_llm_multilabel._aggregation import aggregate_max, pack_steps
    from sklearn_llm_multilabel.store._files import StepCache, clear_memory_cache
    from sklearn_llm_multilabel.store._sharded import ShardedStore

    keys = [key(i) for i in range(n)]
    rows = []
    for layout in ("one file per text", "sharded Parquet"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "store"
            if layout == "sharded Parquet":
                ShardedStore(folder, hidden_dtype="float16")
            cache = StepCache(folder)
            write = 0.0
            for lo in range(0, n, batch):  # records made batch by batch, as workers make them
                records = [synthetic(i) for i in range(lo, min(lo + batch, n))]
                start = time.perf_counter()
                cache.put_many(keys[lo:lo + batch], records)
                write += time.perf_counter() - start
            del records
            clear_memory_cache()  # the reader holds nothing the writers made
            gc.collect()
            files = sum(len(f) for _, _, f in os.walk(folder))
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            start = time.perf_counter()
            back = StepCache(folder).get_many(keys)
            read = time.perf_counter() - start
            start = time.perf_counter()
            scores, mask = pack_steps([r.step_scores for r in back])
            aggregate_max(scores, mask)
            aggregate = time.perf_counter() - start
            del back
            clear_memory_cache()
            gc.collect()
            rows.append({"layout": layout, "records": n, "write_s": write, "read_s": read,
                         "aggregate_s": aggregate, "files": files, "bytes_per_record": size / n})
            if layout == "sharded Parquet":  # the same shards, each record decoded on its own
                start = time.perf_counter()
                one_by_one = read_one_by_one(folder, keys)
                rows.append({"layout": "sharded Parquet, record by record", "records": n,
                             "write_s": None, "read_s": time.perf_counter() - start,
                             "aggregate_s": None, "files": files,
                             "bytes_per_record": size / n})
                del one_by_one
                gc.collect()
    return rows


RUNNERS = {"1x1": ("Ray, 1 worker x 1 thread", 1, 1), "1x2": ("Ray, 1 worker x 2 threads", 1, 2),
           "2x1": ("Ray, 2 workers x 1 thread", 2, 1)}


def bench_runner(n_texts: int, model: str, runners=tuple(RUNNERS)) -> list[dict]:
    import ray

    from sklearn_llm_multilabel import LLMMultiLabelClassifier
    from sklearn_llm_multilabel.datasets import load_illustrative_topics, load_mfrc
    from sklearn_llm_multilabel.distributed import score_dataset
    from sklearn_llm_multilabel.scoring import score_texts

    try:
        ds = load_mfrc()
    except FileNotFoundError:
        ds = load_illustrative_topics()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds.data))
    train = [int(i) for i in order[:200]]
    texts = [ds.data[i] for i in order[200:200 + n_texts]]
    clf = LLMMultiLabelClassifier(model, labels=ds.label_names, show_progress=False)
    clf.fit([ds.data[i] for i in train], ds.target[train])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        start = time.perf_counter()
        score_texts(clf, texts, store=Path(tmp) / "local")
        local = time.perf_counter() - start
        torch.set_num_threads(threads)
        rows.append({"runner": "local engine, 1 thread", "seconds": local, "texts_per_s": n_texts / local})
        reference = LLMMultiLabelClassifier(**{**clf.get_params(), "cache_dir": Path(tmp) / "local"})
        expected = reference.fit([ds.data[i] for i in train], ds.target[train]).predict_proba(texts)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for name, workers, per_actor in (RUNNERS[r] for r in runners):
                out = Path(tmp) / name.replace(" ", "_").replace(",", "")
                summary = score_dataset(clf, texts, output=out, num_workers=workers,
                                        torch_threads=per_actor, batch_size=32,
                                        show_progress=False, hidden_states=True)
                check = LLMMultiLabelClassifier(**{**clf.get_params(), "cache_dir": out})
                got = check.fit([ds.data[i] for i in train], ds.target[train]).predict_proba(texts)
                rows.append({"runner": name, "seconds": summary.seconds,
                             "texts_per_s": n_texts / summary.seconds,
                             "max_abs_difference": float(np.abs(got - expected).max())})
        finally:
            ray.shutdown()
    for row in rows:
        row["ratio_to_local"] = row["texts_per_s"] / rows[0]["texts_per_s"]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=500)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip-runner", action="store_true")
    parser.add_argument("--runners", nargs="+", choices=sorted(RUNNERS), default=list(RUNNERS),
                        help="Ray configurations (workers x torch threads) to compare with local")
    parser.add_argument("--out", default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.simplefilter("ignore")
    results = {"stores": [row for n in args.sizes if n for row in bench_stores(n)]}
    print("| layout | records | write (s) | read by key (s) | re-aggregate (s) | files | bytes/record |")
    print("|---|---|---|---|---|---|---|")
    for r in results["stores"]:
        write = "—" if r["write_s"] is None else f"{r['write_s']:.1f}"
        aggregate = "—" if r["aggregate_s"] is None else f"{r['aggregate_s']:.2f}"
        print(f"| {r['layout']} | {r['records']:,} | {write} | {r['read_s']:.1f} | "
              f"{aggregate} | {r['files']:,} | {r['bytes_per_record']:,.0f} |")
    if not args.skip_runner:
        results["runner"] = bench_runner(args.n_texts, args.model, args.runners)
        print(f"\n{args.n_texts} texts, {args.model}:\n")
        print("| runner | seconds | texts/s | ÷ local | max abs difference |")
        print("|---|---|---|---|---|")
        for r in results["runner"]:
            diff = f"{r['max_abs_difference']:.1e}" if "max_abs_difference" in r else "—"
            print(f"| {r['runner']} | {r['seconds']:.0f} | {r['texts_per_s']:.2f} | "
                  f"{r['ratio_to_local']:.2f} | {diff} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
