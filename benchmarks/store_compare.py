"""Reading cached records, against another source tree, side by side in one run.

Writes ``--records`` synthetic step records (shaped like the embedded
model's: 6 labels, 3 positions, hidden size 576 stored as float16) into a
sharded store, then, in fresh interpreters alternating between this tree
and ``--reference`` (for instance a ``git worktree`` of an earlier commit),
reads them all back by key and re-aggregates them (max over steps), twice
in one process: cold (the store's first read) and warm (the same records
again, from the process's memory layer). Prints the medians and the ratios.

Run::

    git worktree add /tmp/sklml-before <commit>
    .venv/bin/python benchmarks/store_compare.py --reference /tmp/sklml-before
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

WRITE = """
import hashlib, sys
import numpy as np
try:
    from sklearn_llm_multilabel.store._records import StepRecord
    from sklearn_llm_multilabel.store._sharded import ShardedStore
except ImportError:  # a tree from before the store package
    from sklearn_llm_multilabel.backends._base import StepRecord
    from sklearn_llm_multilabel._store import ShardedStore
folder, n = sys.argv[1], int(sys.argv[2])
store = ShardedStore(folder, hidden_dtype="float16")
for lo in range(0, n, 1000):
    keys, records = [], []
    for i in range(lo, min(lo + 1000, n)):
        rng = np.random.default_rng(i)
        keys.append(hashlib.sha256(str(i).encode()).hexdigest())
        records.append(StepRecord(
            position_scores=rng.normal(size=(3, 7)).astype(np.float32),
            generated_ids=rng.integers(0, 49152, 3), n_valid=2, step_positions=np.array([0]),
            step_labels=np.array([1]), label_mass=rng.random(3).astype(np.float32),
            hidden=rng.normal(size=576).astype(np.float32), text="care", parsed=("care",),
            unknown=()))
    store.put_many(keys, records)
"""

READ = """
import hashlib, json, sys, time
try:
    from sklearn_llm_multilabel.store._files import StepCache
except ImportError:
    from sklearn_llm_multilabel._cache import StepCache
from sklearn_llm_multilabel._aggregation import aggregate_max, pack_steps
folder, n = sys.argv[1], int(sys.argv[2])
keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
out = {}
for phase in ("cold", "warm"):
    start = time.perf_counter()
    records = StepCache(folder).get_many(keys)
    scores, mask = pack_steps([r.step_scores for r in records])
    aggregate_max(scores, mask)
    out[phase] = time.perf_counter() - start
print(json.dumps(out))
"""


def run(tree: Path, code: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tree,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{tree}:\n{result.stderr[-2000:]}")
    return result.stdout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="the other source tree")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    times = {"reference": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "store"
        run(args.reference, WRITE, str(folder), str(args.records))  # the older format: both read it
        for i in range(args.repeats):
            order = [("reference", args.reference), ("this", HERE)]
            for name, tree in order if i % 2 == 0 else order[::-1]:
                times[name].append(json.loads(run(tree, READ, str(folder), str(args.records))))
    print(f"{args.records:,} cached step records read by key and aggregated (max), median of "
          f"{args.repeats} fresh interpreters each, alternating:\n")
    print("| tree | cold read + aggregate (s) | warm, from memory (s) |")
    print("|---|---|---|")
    med = {name: {p: statistics.median(t[p] for t in runs) for p in ("cold", "warm")}
           for name, runs in times.items()}
    for name in ("reference", "this"):
        print(f"| {name} | {med[name]['cold']:.2f} | {med[name]['warm']:.2f} |")
    print(f"\nreference ÷ this: cold {med['reference']['cold'] / med['this']['cold']:.2f}, "
          f"warm {med['reference']['warm'] / med['this']['warm']:.2f}")


if __name__ == "__main__":
    main()
