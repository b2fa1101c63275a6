"""Which demonstrations carry signal: stratified vs retrieved (knn), with and without empty-label
demonstrations, each with and without a Platt calibrator, with bootstrap intervals.

For every dataset: a seeded subsample (``--n-train`` / ``--n-test``), then
:func:`~sklearn_llm_multilabel.report.evaluate_strategies` (aggregation max,
``calibrate=True``, ``n_bootstrap``) once per demonstration setting. Every
row is paired with the constant prior (the same resampled test texts), so
``vs prior`` intervals that exclude 0 are differences the test set supports.
Writes a markdown page and a figure (NLL and L1 per setting, with 95%
intervals, the prior as a line); ``--from-json`` rewrites them from a saved
run. ``--cost N`` instead times ``predict_proba`` on N MFRC test texts with
the stratified and the retrieved prompt, cold caches, alternating, and prints
the texts/s ratio.

Run::

    .venv/bin/python benchmarks/demonstrations.py --out docs/results/demonstrations
    .venv/bin/python benchmarks/demonstrations.py --cost 40 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from sklearn_llm_multilabel.datasets import (
    load_goemotions,
    load_hs_brexit,
    load_mfrc,
    subset,
    train_test_split_bunch,
)
from sklearn_llm_multilabel.report import PRIOR, TFIDF, evaluate_strategies, prior_mark

SETTINGS = {  # name -> (demo_selection, include_empty_demos)
    "stratified": ("stratified", False),
    "stratified + empty": ("stratified", True),
    "knn": ("knn", False),
    "knn + empty": ("knn", True),
    "annotator prompts + empty": ("annotator", True),  # Le-Wi-Di files and annotator tables
}
METRICS = ("nll", "l1", "example_f1")


def datasets(n_train: int, n_test: int, names: list[str]) -> dict:
    rng = np.random.default_rng(0)

    def sample(bunch, n):
        return subset(bunch, np.sort(rng.choice(len(bunch.data), min(n, len(bunch.data)),
                                                replace=False)))

    found = {}
    if "mfrc" in names:
        found["MFRC"] = train_test_split_bunch(load_mfrc(), train_size=n_train,
                                               test_size=n_test, random_state=0)
    if "hs_brexit" in names:
        found["HS-Brexit"] = (sample(load_hs_brexit("train"), n_train),
                              sample(load_hs_brexit("test"), n_test))
    if "goemotions" in names:
        found["GoEmotions"] = (sample(load_goemotions("train"), n_train),
                               sample(load_goemotions("test"), n_test))
    return found


def interval(row: dict, metric: str) -> str:
    low, high = row[f"{metric}_ci"]
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]{prior_mark(row, metric)}"


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.2 * len(names)), squeeze=False)
    for row_axes, name in zip(axes, names):
        rows = results[name]["rows"]
        methods = [m for m in rows if m not in (PRIOR, TFIDF)]
        for ax, metric in zip(row_axes, ("nll", "l1")):
            values = np.array([rows[m][metric] for m in methods])
            cis = np.array([rows[m][f"{metric}_ci"] for m in methods])
            colors = ["tab:blue" if "platt" not in m else "tab:orange" for m in methods]
            ax.barh(range(len(methods)), values, color=colors,
                    xerr=np.abs(cis.T - values), capsize=3)
            ax.axvline(rows[PRIOR][metric], color="0.3", ls="--", label="constant prior")
            ax.axvline(rows[TFIDF][metric], color="0.6", ls=":", label="tf-idf + linear")
            ax.set_yticks(range(len(methods)), methods, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{name}: {metric.upper()} (lower is better), 95% intervals",
                         fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cost(args) -> dict:
    """texts/s of the stratified and the retrieved prompt on the same texts, interleaved."""
    from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache

    train, test = train_test_split_bunch(load_mfrc(), train_size=args.n_train,
                                         test_size=args.cost, random_state=0)
    fitted = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for selection in ("stratified", "knn"):
            clf = LLMMultiLabelClassifier(args.model, labels=train.label_names,
                                          n_shots=args.n_shots, demo_selection=selection,
                                          show_progress=False)
            fitted[selection] = clf.fit(train.data, train.target)
            clf.predict_proba(test.data[:1])  # weights, encoder and embeddings loaded
        times = {s: [] for s in fitted}
        for _ in range(args.repeats):
            for selection, clf in fitted.items():
                clear_memory_cache()
                started = time.perf_counter()
                clf.predict_proba(test.data)
                times[selection].append(time.perf_counter() - started)
    rates = {s: args.cost / float(np.median(t)) for s, t in times.items()}
    print(f"{args.cost} MFRC texts, {args.n_shots} shots, median of {args.repeats}: "
          + ", ".join(f"{s} {r:.2f} texts/s" for s, r in rates.items())
          + f"; knn / stratified {rates['knn'] / rates['stratified']:.3f}")
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--datasets", default="mfrc,hs_brexit,goemotions")
    parser.add_argument("--settings", default=",".join(s for s in SETTINGS
                                                         if "annotator" not in s),
                        help=f"from {', '.join(SETTINGS)} (annotator prompts need a dataset "
                             "with annotator ids: hs_brexit)")
    parser.add_argument("--cache-dir", default=None, help="a step cache (re-runs score nothing)")
    parser.add_argument("--out", default="demonstrations", help="writes OUT.md, OUT.json, OUT.png")
    parser.add_argument("--from-json", help="rewrite the page and figure from this saved run")
    parser.add_argument("--cost", type=int, default=0, help="time N texts instead (see above)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.cost:
        return cost(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(Path(args.from_json).read_text()) if args.from_json else {}
    for name, (train, test) in ({} if args.from_json else datasets(args.n_train, args.n_test,
                                        args.datasets.split(","))).items():
        rows, seconds = {}, {}
        for setting in args.settings.split(","):
            selection, empty = SETTINGS[setting]
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = evaluate_strategies(
                    train, test, strategies=["max"], model=args.model, n_shots=args.n_shots,
                    include_empty_demos=empty, demo_selection=selection, calibrate=True,
                    cache_dir=args.cache_dir, random_state=0, show_progress=False,
                    n_bootstrap=args.n_bootstrap)
            seconds[setting] = time.perf_counter() - started
            rows.setdefault(PRIOR, report.rows[PRIOR])
            rows.setdefault(TFIDF, report.rows[TFIDF])
            rows[f"{setting}"] = report.rows["max"]
            rows[f"{setting} + platt"] = report.rows["max + platt"]
            print(f"{name} {setting}: {seconds[setting]:.0f} s, NLL {report.rows['max']['nll']:.3f}"
                  f", L1 {report.rows['max']['l1']:.3f}", flush=True)
        empty_share = float(np.mean((np.asarray(train.target) >= 0.5).sum(axis=1) == 0))
        results[name] = {"n_train": len(train.data), "n_test": len(test.data),
                         "labels": list(train.label_names), "rows": rows, "seconds": seconds,
                         "train_share_without_label": empty_share}
    lines = [f"Model {args.model}, {args.n_shots} shots, aggregation max; each cell: value "
             f"[95% bootstrap interval over test texts, {args.n_bootstrap} resamples]; ▲ better, "
             "▼ worse than the constant prior, where the paired interval of the difference "
             "excludes 0.", ""]
    for name, found in results.items():
        lines += [f"## {name}", "",
                  f"{found['n_train']} training / {found['n_test']} test texts, "
                  f"{len(found['labels'])} labels; {100 * found['train_share_without_label']:.0f}"
                  "% of the training texts have no label.", "",
                  "| setting | " + " | ".join(f"{m} ↓" if m != "example_f1" else f"{m} ↑"
                                               for m in METRICS) + " |",
                  "|---" * (len(METRICS) + 1) + "|"]
        for method, row in found["rows"].items():
            lines.append(f"| {method} | " + " | ".join(interval(row, m) for m in METRICS) + " |")
        lines.append("")
    (out.with_suffix(".md")).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not args.from_json:
        (out.with_suffix(".json")).write_text(json.dumps(results, indent=2), encoding="utf-8")
    figure(results, out.with_suffix(".png"))
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
