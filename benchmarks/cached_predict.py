"""Wall time of a fully cached ``sklml predict``, against another source tree.

A fitted estimator (the embedded model) is saved (as ``.skops``, and with
joblib for a tree older than the skops format) and every input
text is scored once into an on-disk step cache. Then ``sklml predict`` runs in
a fresh interpreter, alternating between this tree and ``--reference`` (for
instance a ``git worktree`` of an earlier commit), each time on the same
estimator, cache and texts; every run is served from the cache. The median of
each is reported with the ratio, and the outputs of the two trees are checked
to be identical.

Run::

    git worktree add /tmp/sklml-before <commit>
    .venv/bin/python benchmarks/cached_predict.py --reference /tmp/sklml-before
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def prepare(folder: Path, n_texts: int, model: str) -> tuple[Path, Path]:
    """Fit, score every text into ``folder/cache`` and save the estimator and the input CSV."""
    import joblib

    from sklearn_llm_multilabel import LLMMultiLabelClassifier
    from sklearn_llm_multilabel.datasets import load_illustrative_topics
    from sklearn_llm_multilabel.persistence import save_estimator

    ds = load_illustrative_topics()
    clf = LLMMultiLabelClassifier(model, labels=ds.label_names, n_shots=4,
                                  cache_dir=folder / "cache", show_progress=False)
    clf.fit(ds.data, ds.target)
    texts = (ds.data * (n_texts // len(ds.data) + 1))[:n_texts]
    texts = [f"{t} ({i})" for i, t in enumerate(texts)]
    clf.predict_proba(texts)
    estimator = save_estimator(clf, folder / "estimator.skops")
    joblib.dump(clf, folder / "estimator.joblib")  # for a tree that reads only joblib
    source = folder / "input.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return estimator, source


def run(tree: Path, estimator: Path, source: Path, output: Path) -> float:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    if not (tree / "sklearn_llm_multilabel" / "persistence.py").is_file():
        estimator = estimator.with_suffix(".joblib")  # a tree from before the skops format
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sklearn_llm_multilabel.cli", "predict",
                             "--estimator", str(estimator), "--input", str(source),
                             "--output", str(output)], env=env, cwd=tree, capture_output=True,
                            text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: sklml predict failed:\n{result.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="the other source tree")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-texts", type=int, default=40)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        estimator, source = prepare(folder, args.n_texts, args.model)
        times = {"reference": [], "this": []}
        outputs = {}
        for i in range(args.repeats):
            order = [("reference", args.reference), ("this", HERE)]
            for name, tree in order if i % 2 == 0 else order[::-1]:
                out = folder / f"{name}.csv"
                times[name].append(run(tree, estimator, source, out))
                outputs[name] = out.read_text(encoding="utf-8")
        same = outputs["reference"] == outputs["this"]
    ref, this = statistics.median(times["reference"]), statistics.median(times["this"])
    print(f"Fully cached `sklml predict` of {args.n_texts} texts with `{args.model}`, median of "
          f"{args.repeats} fresh interpreters each, alternating:\n")
    print("| tree | wall time (s) | runs (s) |")
    print("|---|---|---|")
    for name, value in (("reference", ref), ("this", this)):
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"| {name} | {value:.1f} | {runs} |")
    print(f"\nreference ÷ this: {ref / this:.2f}; identical output CSVs: {same}")


if __name__ == "__main__":
    main()
