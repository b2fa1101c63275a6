"""How scoring time and memory grow with the number of texts and of labels.

For 6 labels (MFRC N = 3) and 28 labels (GoEmotions, the original label set),
fits one classifier (10 shots, ``batch_size="auto"``), then scores seeded
samples of 100, 1,000 and 10,000 texts with a cold cache, recording seconds,
texts/s and the peak resident memory above the loaded model. After each cold
run, the same texts are re-scored with another aggregation (a warm cache: no
model pass). Writes a JSON file and a log-log plot of time versus texts.

Run::

    .venv/bin/python benchmarks/scaling.py --sizes 100,1000,10000 \\
        --plot docs/_static/scaling.png --json docs/results/scaling.json
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
from _common import machine, measure, rss_mib

from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache, get_scoring_stats
from sklearn_llm_multilabel.datasets import load_goemotions, load_mfrc, subset


def datasets(largest: int):
    """(name, train bunch, pool of distinct texts to score) for 6 and 28 labels."""
    rng = np.random.default_rng(0)
    mfrc = load_mfrc()
    order = rng.permutation(len(mfrc.data))
    yield "MFRC, 6 labels", subset(mfrc, order[:2000]), [mfrc.data[i] for i in order[2000:]]
    go = load_goemotions("train", pooled=False)
    order = rng.permutation(len(go.data))
    yield ("GoEmotions, 28 labels", subset(go, order[:2000]),
           [go.data[i] for i in order[2000 : 2000 + 3 * largest]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--sizes-28", default=None,
                        help="sizes for the 28-label set (default: --sizes; '' skips it)")
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    sizes_28 = [int(s) for s in (args.sizes if args.sizes_28 is None else args.sizes_28).split(",")
                if s]
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    print(machine(), flush=True)

    results = {"machine": machine(), "runs": []}
    for name, train, pool in datasets(max(sizes + sizes_28)):
        if not (sizes if name.startswith("MFRC") else sizes_28):
            continue
        clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names, n_shots=10,
                                      batch_size=batch_size, random_state=0,
                                      show_progress=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(train.data, train.target).predict_proba(train.data[:2])
        model_rss = rss_mib()
        pool = list(dict.fromkeys(t for t in pool if t.strip()))  # distinct, non-empty
        for n in sizes if name.startswith("MFRC") else sizes_28:
            texts = pool[:n]
            if len(texts) < n:
                print(f"{name}: only {len(texts)} distinct texts; skipping n={n}")
                continue
            clear_memory_cache()
            before = get_scoring_stats()["texts_scored"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with measure() as cold:
                    clf.set_params(aggregation="max").predict_proba(texts)
                scored = get_scoring_stats()["texts_scored"] - before
                with measure() as warm:
                    clf.set_params(aggregation="mean").predict_proba(texts)
            assert get_scoring_stats()["texts_scored"] - before == scored  # warm: no model pass
            run = {"labels": name, "n": n, "seconds": cold.seconds, "texts_per_s": n / cold.seconds,
                   "peak_rss_above_model_mib": cold.peak_rss_mib - model_rss,
                   "warm_seconds": warm.seconds}
            results["runs"].append(run)
            print(f"{name}, {n} texts: {cold.seconds:.1f} s ({n / cold.seconds:.2f} texts/s), "
                  f"peak RSS +{run['peak_rss_above_model_mib']:.0f} MiB above the loaded model; "
                  f"warm re-scoring {warm.seconds:.3f} s", flush=True)

    print("\n| labels | texts | seconds | texts/s | peak RSS above model (MiB) | warm re-score (s) |")
    print("|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(f"| {r['labels']} | {r['n']:,} | {r['seconds']:.1f} | {r['texts_per_s']:.2f} | "
              f"{r['peak_rss_above_model_mib']:.0f} | {r['warm_seconds']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.plot:
        plot(results, args.plot)
    return results


def plot(results: dict, path: str) -> None:
    """Log-log seconds versus texts, one line per label set, with a linear reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for labels in dict.fromkeys(r["labels"] for r in results["runs"]):
        runs = [r for r in results["runs"] if r["labels"] == labels]
        n = np.array([r["n"] for r in runs])
        t = np.array([r["seconds"] for r in runs])
        ax.plot(n, t, marker="o", label=f"{labels} (cold)")
        ax.plot(n, t[0] * n / n[0], linestyle=":", color="grey")
        ax.plot(n, [r["warm_seconds"] for r in runs], marker="x", linestyle="--",
                label=f"{labels} (warm cache)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("texts scored")
    ax.set_ylabel("seconds")
    ax.set_title("Scoring time (dotted: linear in the number of texts)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
