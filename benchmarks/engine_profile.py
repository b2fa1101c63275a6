"""Where the time of ``predict_proba`` goes, against the floor of ``throughput.py``.

Profiles one cold ``predict_proba`` (aggregation ``max``) on seeded MFRC test
texts with ``cProfile`` and splits its time into the engine's phases:

prefill
    The first forward of each batch (texts after the shared prefix).
decode
    The forwards of the greedy decoding steps after it.
step bookkeeping
    Per step: label-score reduction, probability mass, argmax, copies to
    NumPy, stop checks, early exit (``batch_select_indices``).
records
    Building the step records (parsing the generated labels).
tokenising
    Encoding the queries (sealed) before scoring.
keys
    The records' content keys (hash of the sealed prompt).
store
    Writing and reading the step records (in-memory cache here).
other
    The rest: validation, aggregation, Python overhead.

The floor (one batched forward over text + generated tokens) is timed in the
same run, so the table also says how much of the gap each phase explains.

Run::

    .venv/bin/python benchmarks/engine_profile.py --n 60
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import warnings

from _common import machine
from throughput import run_floor

from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch

#: phase -> functions (file suffix, name) whose cumulative time it is
PHASES = {
    "prefill": [("_engine.py", "_first_forward")],
    "forward (all)": [("_engine.py", "_forward")],
    "label scores": [("_labels.py", "reduce_label_logits")],
    "stop checks": [("_hf.py", "_update_stops")],
    "early exit": [("cache_utils.py", "batch_select_indices")],
    "records": [("_hf.py", "_make_record")],
    "tokenising": [("_engine.py", "encode_queries")],
    "keys": [("_engine.py", "query_key")],
    "store": [("_files.py", "get_many"), ("_files.py", "put_many")],
}


def cumulative(stats: pstats.Stats, targets) -> float:
    total = 0.0
    for (filename, _, name), (_, _, _, cum, _) in stats.stats.items():
        if any(filename.endswith(suffix) and name == func for suffix, func in targets):
            total += cum
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--n-shots", type=int, default=10)
    args = parser.parse_args(argv)
    train, test = train_test_split_bunch(load_mfrc(), train_size=2000, test_size=args.n,
                                         random_state=0)
    texts = list(test.data)
    clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names,
                                  n_shots=args.n_shots, random_state=0, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.data, train.target)
        clf.predict_proba(texts[:2])  # weights loaded, prefix encoded
        clear_memory_cache()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        clf.predict_proba(texts)
        profiler.disable()
        ours = time.perf_counter() - started
        records = clf._records(texts)
        scorer = clf._scorer()
        query_ids = scorer.encode_queries(scorer.prepare_queries(texts))
        started = time.perf_counter()
        run_floor(scorer, query_ids, records, "auto")
        floor = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    found = {name: cumulative(stats, targets) for name, targets in PHASES.items()}
    decode = found.pop("forward (all)") - found["prefill"]
    rows = {"prefill": found.pop("prefill"), "decode": decode, **found}
    # profiling slows Python-heavy phases more than the forwards: shares are of the profiled run
    profiled = sum(v for k, (_, _, _, v, _) in stats.stats.items()
                   if k[2] == "predict_proba" and k[0].endswith("_classifier.py"))
    rows["other"] = profiled - sum(rows.values())
    print(f"{args.n} MFRC texts; {machine()}\nours {ours:.2f} s (profiled), floor {floor:.2f} s, "
          f"floor / ours {floor / ours:.2f}\n")
    print("| phase | seconds (profiled) | share of predict_proba |\n|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {100 * seconds / profiled:.0f}% |")
    return rows


if __name__ == "__main__":
    main()
