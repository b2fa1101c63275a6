"""Where a Ray actor's time goes: start-up against per-text scoring, beside the local engine.

The embedded model, 100 MFRC texts (or the illustrative set without
``../shared/data``), 1 torch thread everywhere. Local: the first pass over the
texts in this process (it reads the weights and encodes the prompt prefix).
Ray: one actor (``num_cpus=1``) that unpickles the fitted estimator and builds
its scorer (start-up), then scores the same texts twice (the first pass reads
the weights and encodes the prefix, the second is scoring alone).

Run::

    .venv/bin/python benchmarks/ray_actor_overhead.py
"""

from __future__ import annotations

import copy
import os
import pickle
import time
import warnings

import numpy as np


class _Actor:
    def __init__(self, payload: bytes):
        start = time.perf_counter()
        import torch

        torch.set_num_threads(1)
        self.estimator = pickle.loads(payload)
        self.scorer = self.estimator._scorer()
        self.startup = time.perf_counter() - start

    def run(self, texts):
        start = time.perf_counter()
        self.scorer.score_queries(self.scorer.prepare_queries(texts),
                                  batch_size=self.estimator.batch_size)
        return self.startup, time.perf_counter() - start, os.nice(0)


def main() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.simplefilter("ignore")
    import ray
    import torch

    from sklearn_llm_multilabel import LLMMultiLabelClassifier
    from sklearn_llm_multilabel.datasets import load_illustrative_topics, load_mfrc

    try:
        ds = load_mfrc()
    except FileNotFoundError:
        ds = load_illustrative_topics()
    order = np.random.default_rng(0).permutation(len(ds.data))
    train, texts = [int(i) for i in order[:200]], [ds.data[i] for i in order[200:300]]
    clf = LLMMultiLabelClassifier("smollm2-135m-instruct", labels=ds.label_names,
                                  show_progress=False)
    clf.fit([ds.data[i] for i in train], ds.target[train])
    payload = pickle.dumps(copy.copy(clf).set_params(cache_dir=None))
    torch.set_num_threads(1)
    start = time.perf_counter()
    scorer = clf._scorer()
    scorer.score_queries(scorer.prepare_queries(texts), batch_size=clf.batch_size)
    local = time.perf_counter() - start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=1)(_Actor).remote(payload)
        startup, first, nice = ray.get(actor.run.remote(texts))
        _, second, _ = ray.get(actor.run.remote(texts))
    finally:
        ray.shutdown()
    print(f"{len(texts)} texts, 1 torch thread:\n")
    print("| where | seconds |")
    print("|---|---|")
    print(f"| local, first pass (reads the weights, encodes the prefix) | {local:.1f} |")
    print(f"| Ray actor, start-up (imports, unpickling, scorer) | {startup:.1f} |")
    print(f"| Ray actor, first pass (reads the weights, encodes the prefix) | {first:.1f} |")
    print(f"| Ray actor, second pass (scoring alone) | {second:.1f} |")
    print(f"\nactor's first pass / local first pass: {first / local:.2f}; actor niceness {nice}")


if __name__ == "__main__":
    main()
