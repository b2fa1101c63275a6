"""Wall time of a fully cached ``sklml predict``, against another source tree.

A fitted estimator (the embedded model) is saved and every input text is
scored once into an on-disk step cache. The reference tree fits the same
estimator in its own process and saves it its own way (``.skops``, or joblib
for a tree older than the skops format), so each tree reads a file it wrote;
the record keys are the same, so both find the same records. Then ``sklml
predict`` runs in a fresh interpreter, alternating between this tree and
``--reference`` (for instance a ``git worktree`` of an earlier commit), each
time on its estimator, the same cache and texts; every run is served from the
cache. The median of
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


FIT_AND_SAVE = """
import sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.datasets import load_illustrative_topics
folder, model = Path(sys.argv[1]), sys.argv[2]
ds = load_illustrative_topics()
clf = LLMMultiLabelClassifier(model, labels=ds.label_names, n_shots=4,
                              cache_dir=folder / "cache", show_progress=False)
clf.fit(ds.data, ds.target)
try:
    from sklearn_llm_multilabel.persistence import save_estimator
    save_estimator(clf, folder / "reference.skops")
except ImportError:  # a tree from before the skops format
    import joblib
    joblib.dump(clf, folder / "reference.joblib")
"""


def save_reference(tree: Path, folder: Path, model: str) -> Path:
    """The reference tree fits the same estimator and saves it as it does."""
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    subprocess.run([sys.executable, "-c", FIT_AND_SAVE, str(folder), model], env=env, cwd=tree,
                   check=True, capture_output=True)
    found = [p for p in (folder / "reference.skops", folder / "reference.joblib") if p.is_file()]
    return found[0]


def prepare(folder: Path, n_texts: int, model: str) -> tuple[Path, Path]:
    """Fit, score every text into ``folder/cache`` and save the estimator and the input CSV."""
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
    source = folder / "input.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return estimator, source


def run(tree: Path, estimator: Path, source: Path, output: Path) -> float:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    trust = ["--trust-pickle"] if estimator.suffix == ".joblib" else []
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sklearn_llm_multilabel.cli", "predict",
                             "--estimator", str(estimator), "--input", str(source),
                             "--output", str(output), *trust], env=env, cwd=tree,
                            capture_output=True, text=True, check=False)
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
        estimators = {"this": estimator,
                      "reference": save_reference(args.reference, folder, args.model)}
        times = {"reference": [], "this": []}
        outputs = {}
        for i in range(args.repeats):
            order = [("reference", args.reference), ("this", HERE)]
            for name, tree in order if i % 2 == 0 else order[::-1]:
                out = folder / f"{name}.csv"
                times[name].append(run(tree, estimators[name], source, out))
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
