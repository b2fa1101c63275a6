"""Supervised fine-tuning (LoRA) against the frozen model and supervised baselines.
=================================================================================

On the same split of each dataset, against annotator proportions (NLL, L1,
example-F1):

* the frozen model, max over label-generation steps, and its hard outputs;
* the model fine-tuned with LoRA in ``fit`` (``finetune="lora"``) on the
  majority label sets (the paper's SFT): hard outputs and max over steps;
* the same with ``finetune_targets="annotators"``: label sets that reproduce
  the annotator distribution (each annotator's set on HS-Brexit, sets drawn
  to match the proportions on MFRC);
* majority targets trained on the instruction and query alone
  (``finetune_shots=0``) and scored with the usual demonstrations: what a
  training prompt that differs from the scoring prompt costs;
* a linear probe on the frozen model's hidden states, TF-IDF + a linear model
  fitted to the proportions, and the constant prior.

It also reports the first step's entropy and top probability before and after
fine-tuning (the paper finds that fine-tuning makes step distributions
spikier), the fine-tuning time, the time of an identical refit (which finds
the adapter and trains nothing) and whether a pickled and reloaded estimator
predicts the same probabilities.

Run: ``.venv/bin/python examples/finetune.py --out docs/results/finetune.md``
(MFRC and HS-Brexit from ``../shared/data``; about 30 minutes on 2 CPU cores).
"""

import argparse
import json
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from sklearn_llm_multilabel import DistributionCalibrator, LLMMultiLabelClassifier
from sklearn_llm_multilabel.datasets import (
    load_hs_brexit,
    load_mfrc,
    subset,
    train_test_split_bunch,
)
from sklearn_llm_multilabel.metrics import distribution_l1, distribution_nll, example_f1


def load_splits(name: str, args):
    """MFRC: a seeded split of the N=3 items; HS-Brexit: seeded draws from its train and test files."""
    rng = np.random.default_rng(args.seed)
    if name == "mfrc":
        return train_test_split_bunch(load_mfrc(args.data_home), train_size=args.n_train,
                                      test_size=args.n_test, random_state=args.seed)
    train, test = load_hs_brexit("train", args.data_home), load_hs_brexit("test", args.data_home)
    train = subset(train, np.sort(rng.permutation(len(train.data))[: args.n_train]))
    test = subset(test, np.sort(rng.permutation(len(test.data))[: args.n_test]))
    return train, test


def first_step_stats(clf, texts) -> dict:
    """Mean entropy (nats) and top probability of the first step's distribution (labels + none)."""
    first = [t["step_distributions"][0] for t in clf.predict_steps(texts)]
    entropy = [float(-(d * np.log(np.clip(d, 1e-12, 1))).sum()) for d in first]
    return {"entropy": float(np.mean(entropy)), "top_probability": float(np.mean([d.max() for d in first]))}


def evaluate(name: str, args) -> dict:
    train, test = load_splits(name, args)
    print(f"\n== {name}: {len(train.data)} train / {len(test.data)} test texts, "
          f"labels {train.label_names}", flush=True)
    common = dict(model=args.model, labels=train.label_names, n_shots=args.n_shots,
                  random_state=args.seed, show_progress=args.progress)
    probas, seconds, spikiness = {}, {}, {}
    frozen = LLMMultiLabelClassifier(**common).fit(train.data, train.target)
    probas["frozen: max over steps"] = frozen.predict_proba(test.data)
    probas["frozen: hard outputs"] = frozen.set_params(aggregation="hard").predict_proba(test.data)
    frozen.set_params(aggregation="max")
    spikiness["frozen"] = first_step_stats(frozen, test.data)

    tuned = {}
    for targets in ("majority", "annotators"):
        clf = LLMMultiLabelClassifier(**common, finetune="lora", finetune_targets=targets)
        start = time.perf_counter()
        clf.fit(train.data, train.target, annotator_labels=train.annotator_labels)
        seconds[f"fine-tuning ({targets})"] = time.perf_counter() - start
        tuned[targets] = clf
        label = f"SFT ({targets} targets)"
        probas[f"{label}: hard outputs"] = clf.set_params(aggregation="hard").predict_proba(test.data)
        probas[f"{label}: max over steps"] = clf.set_params(aggregation="max").predict_proba(test.data)
        spikiness[label] = first_step_stats(clf, test.data)
        spikiness[label]["training_examples"] = clf.n_finetune_examples_
        spikiness[label]["loss_first_last"] = [float(np.mean(clf.finetune_loss_[:5])),
                                               float(np.mean(clf.finetune_loss_[-5:]))]

    mismatched = LLMMultiLabelClassifier(**common, finetune="lora", finetune_shots=0)
    start = time.perf_counter()
    mismatched.fit(train.data, train.target)
    seconds["fine-tuning (majority, 0-shot training prompt)"] = time.perf_counter() - start
    label = "SFT (majority targets, 0-shot training prompt)"
    probas[f"{label}: max over steps"] = mismatched.predict_proba(test.data)
    spikiness[label] = first_step_stats(mismatched, test.data)
    spikiness[label]["training_examples"] = mismatched.n_finetune_examples_
    spikiness[label]["loss_first_last"] = [float(np.mean(mismatched.finetune_loss_[:5])),
                                           float(np.mean(mismatched.finetune_loss_[-5:]))]

    # an identical refit finds the adapter; a pickled estimator predicts the same
    start = time.perf_counter()
    refit = LLMMultiLabelClassifier(**common, finetune="lora").fit(
        train.data, train.target, annotator_labels=train.annotator_labels)
    seconds["identical refit (majority)"] = time.perf_counter() - start
    reloaded = pickle.loads(pickle.dumps(tuned["majority"]))
    checks = {
        "refit_same_adapter": refit.adapter_key_ == tuned["majority"].adapter_key_,
        "pickle_bytes": len(pickle.dumps(tuned["majority"])),
        "pickle_max_abs_difference": float(np.abs(
            reloaded.predict_proba(test.data) - probas["SFT (majority targets): max over steps"]).max()),
    }

    keep = np.setdiff1d(np.arange(len(train.data)), frozen.demonstration_indices_)
    cal = subset(train, keep)
    probe = DistributionCalibrator(method="linear", random_state=args.seed).fit(
        frozen.first_step_hidden_states(cal.data), cal.target)
    probas["linear probe (frozen hidden states)"] = probe.predict_proba(
        frozen.first_step_hidden_states(test.data))
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          DistributionCalibrator(method="linear", n_components=None))
    probas["TF-IDF + linear (soft)"] = tfidf.fit(train.data, train.target).predict_proba(test.data)
    probas["constant prior"] = np.tile(train.target.mean(axis=0), (len(test.data), 1))

    metrics = {row: {"nll": distribution_nll(test.target, P), "l1": distribution_l1(test.target, P),
                     "example_f1": example_f1(test.target, P)} for row, P in probas.items()}
    for row, m in metrics.items():
        print(f"{row:<42}{m['nll']:>8.3f}{m['l1']:>8.3f}{m['example_f1']:>8.3f}", flush=True)
    return {"dataset": name, "n_train": len(train.data), "n_test": len(test.data),
            "labels": train.label_names,
            "per_annotator_sets": train.annotator_labels is not None,
            "no_majority_label_train": float(np.mean(~(train.target >= 0.5).any(axis=1))),
            "metrics": metrics, "seconds": seconds, "first_step": spikiness, "checks": checks}


def to_markdown(results: list[dict], args, command: str, total: float) -> str:
    lines = ["# Supervised fine-tuning (LoRA) on real data", "",
             f"Command: `{command}`", "",
             f"Model: `{args.model}` (float32, CPU, {platform.machine()}), {args.n_shots} shots, "
             f"seed {args.seed}, default fine-tuning settings (LoRA rank 8, alpha 16 on the "
             "query and value projections, 2 epochs, learning rate 1e-3, batches of 8, trained "
             "on the scoring prompt) unless the row says otherwise. Every row uses the same "
             "split. "
             f"Total wall time {total / 60:.1f} min.", ""]
    for r in results:
        sets = ("each annotator's label set" if r["per_annotator_sets"]
                else "6 sets per text drawn to match the proportions")
        lines += [f"## {r['dataset']}: {r['n_train']} training / {r['n_test']} test texts", "",
                  f"Labels: {', '.join(r['labels'])}. Training texts without a majority label: "
                  f"{r['no_majority_label_train']:.0%}. Annotators targets: {sets}.", "",
                  "| method | NLL ↓ | L1 ↓ | example-F1 ↑ |", "|---|---|---|---|"]
        best = {k: (min if k != "example_f1" else max)(m[k] for m in r["metrics"].values())
                for k in ("nll", "l1", "example_f1")}
        for row, m in r["metrics"].items():
            cells = [f"**{m[k]:.3f}**" if np.isclose(m[k], best[k]) else f"{m[k]:.3f}"
                     for k in ("nll", "l1", "example_f1")]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines += ["", "First label-generation step on the test texts (distribution over the "
                  "labels and none):", "",
                  "| model | mean entropy (nats) | mean top probability | training examples | "
                  "loss, first → last 5 steps |", "|---|---|---|---|---|"]
        for model, s in r["first_step"].items():
            extra = (f"{s['training_examples']} | {s['loss_first_last'][0]:.3f} → "
                     f"{s['loss_first_last'][1]:.3f}") if "training_examples" in s else "— | —"
            lines.append(f"| {model} | {s['entropy']:.3f} | {s['top_probability']:.3f} | {extra} |")
        c = r["checks"]
        lines += ["", "Time: " + "; ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items()) + ".",
                  f"The identical refit found the same adapter: {c['refit_same_adapter']}. "
                  f"A pickled fine-tuned estimator is {c['pickle_bytes'] / 2**20:.1f} MiB and, "
                  f"reloaded, predicts probabilities that differ by at most "
                  f"{c['pickle_max_abs_difference']:.1e}.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["mfrc", "hs_brexit"],
                        choices=["mfrc", "hs_brexit"])
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--out", default=None, help="write a Markdown page (and .json beside it)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = [evaluate(name, args) for name in args.datasets]
    total = time.perf_counter() - start
    if args.out:
        command = "python examples/finetune.py " + " ".join(sys.argv[1:] if argv is None else argv)
        out = Path(args.out)
        out.write_text(to_markdown(results, args, command.strip(), total) + "\n", encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    plot_results(results)
    return results


def plot_results(results: list[dict]):
    """One bar chart of the metrics per dataset (baselines in grey), handed to pyplot so that a
    notebook or the documentation shows it."""
    import matplotlib.pyplot as plt

    from sklearn_llm_multilabel.plotting import plot_metric_bars

    figures = []
    for res in results:
        rows = res["metrics"]
        baselines = [r for r in rows if r == "constant prior" or r.startswith("TF-IDF")
                     or "encoder" in r]
        figures.append(plt.figure(plot_metric_bars(
            rows, baselines=baselines, title=f"{res['dataset']}: {res['n_test']} test texts")))
    return figures


# %%
# LoRA fine-tuning inside ``fit``, against the frozen model with the same prompt, a
# linear probe on its hidden states, TF-IDF and the constant prior.

if __name__ == "__main__":
    main()
