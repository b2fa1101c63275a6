"""VariErrNLI (LeWiDi 2025) with the shared task's own metrics, beside its published systems.
==========================================================================================

The third Learning-With-Disagreements shared task has one multi-label data
set, VariErrNLI: premise/statement pairs where each annotator may choose
several of contradiction, entailment and neutral. Its two tasks are the
library's two outputs:

* **Task A**, soft labels: one probability per label, scored by the
  multi-label average Manhattan distance (``soft_label_manhattan``);
* **Task B**, each annotator's own label set ("perspectivist"), scored by
  the multi-label error rate (``perspectivist_error_rate``).

Every row is fitted on the training file, with no choice made on the test
file: the threshold is 0.5 and the shots 10 throughout, fixed before any
run, and the development file's numbers are printed beside the test file's.
The rows: the most-frequent and random baselines (computed by the library, as
the task defines them), TF-IDF with the linear calibrator, MiniLM fine-tuned
on the soft labels, and the embedded LLM read three ways: max over
label-generation steps, the unary breakdown, and one prompt per annotator
(``demo_selection="annotator"``: each annotator's own training labels as
demonstrations), whose per-annotator label sets answer Task B. The last two
rows measure whether the annotators' metadata (gender, age, nationality,
education) helps: one estimator per annotator fitted on that annotator's own
label sets, without and with a sentence naming who the annotator is before
the instruction. Task B rows that predict one label set give it to every
annotator.

Run (about 11 minutes on a 2-core CPU with an empty step cache)::

    .venv/bin/python examples/lewidi2025_varierrnli.py --out docs/results/lewidi2025.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from sklearn_llm_multilabel import (
    DistributionCalibrator,
    EncoderMultiLabelClassifier,
    LLMMultiLabelClassifier,
)
from sklearn_llm_multilabel.datasets import get_data_home, load_lewidi2025, subset
from sklearn_llm_multilabel.metrics import (
    alignment_report,
    mean_interval,
    perspectivist_error_rates,
)

#: published test-set Task B error rates (LeWiDi 2025 overview and leaderboard)
PUBLISHED = [("Opt-ICL, overall winner (Spectrum-tuned Gemma-3, per-rater examples)", 0.270),
             ("best team on VariErrNLI", 0.124),
             ("most-frequent-label baseline (organisers)", 0.345),
             ("random baseline (organisers)", 0.497)]
THRESHOLD = 0.5


def most_frequent_sets(train, test) -> list[list[list[str]]]:
    """The task's most-frequent baseline: each annotator gets, per label, the choice (chosen or
    not) they made most often in training (ties: not chosen); an annotator never seen in
    training gets the training majority."""
    names = train.label_names
    counts: dict[str, np.ndarray] = {}
    for sets, raters in zip(train.annotator_labels, train.annotator_ids):
        for labels, rater in zip(sets, raters):
            seen = counts.setdefault(rater, np.zeros((2, len(names))))
            seen[0] += 1
            seen[1] += [n in labels for n in names]
    overall = sum(counts.values())

    def chosen(rater):
        seen, picked = counts.get(rater, overall)  # per label: items seen, items chosen
        return [name for name, yes, total in zip(names, picked, seen) if yes > total / 2]

    return [[chosen(rater) for rater in raters] for raters in test.annotator_ids]


def random_sets(test, seed: int) -> list[list[list[str]]]:
    """The task's random baseline: each annotator's label set drawn label by label, p = 0.5."""
    rng = np.random.default_rng(seed)
    return [[[n for n in test.label_names if rng.random() < 0.5] for _ in raters]
            for raters in test.annotator_ids]


def one_set_for_all(proba: np.ndarray, test) -> list[list[list[str]]]:
    """The label set ``proba >= 0.5``, given to every annotator of the item."""
    return [[[n for n, p in zip(test.label_names, row) if p >= THRESHOLD]] * len(raters)
            for row, raters in zip(proba, test.annotator_ids)]


def per_annotator_sets(clf, test) -> list[list[list[str]]]:
    """Each annotator's label set from their own prompt (``demo_selection="annotator"``); an
    annotator with no prompt of their own gets the averaged prompts' set."""
    traces = clf.predict_steps(test.data)
    prompted = list(clf.prompt_annotators_)
    mean = clf.predict_proba(test.data)
    out = []
    for trace, raters, average in zip(traces, test.annotator_ids, mean):
        per = trace["prompt_probabilities"]
        rows = [per[prompted.index(r)] if r in prompted else average for r in raters]
        out.append([[n for n, p in zip(test.label_names, row) if p >= THRESHOLD] for row in rows])
    return out


def annotator_instruction(rater: str, metadata: dict) -> str:
    """The default instruction, preceded by who the annotator is (from the metadata file)."""
    from sklearn_llm_multilabel._prompts import DEFAULT_INSTRUCTION

    about = ", ".join(f"{k.lower()} {v}" for k, v in metadata.get(rater, {}).items())
    return (f"You label as annotator {rater}" + (f" ({about})" if about else "") + ". "
            + DEFAULT_INSTRUCTION)


def one_estimator_per_annotator(train, common: dict, with_metadata: bool) -> dict:
    """``annotator -> estimator`` fitted on that annotator's own label sets only (their
    demonstrations are their own), with their metadata in the instruction when asked."""
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    for i, (sets, raters) in enumerate(zip(train.annotator_labels, train.annotator_ids)):
        for labels, rater in zip(sets, raters):
            rows.setdefault(rater, []).append((i, labels))
    fitted = {}
    for rater, own in sorted(rows.items()):
        extra = ({"instruction": annotator_instruction(rater, train.annotator_metadata)}
                 if with_metadata else {})
        y = np.array([[n in labels for n in train.label_names] for _, labels in own], dtype=int)
        fitted[rater] = LLMMultiLabelClassifier(**common, **extra).fit(
            [train.data[i] for i, _ in own], y)
    return fitted


def from_annotator_estimators(fitted: dict, data) -> tuple[np.ndarray, list]:
    """The mean of the annotators' probabilities (Task A) and each annotator's own set."""
    proba = {rater: clf.predict_proba(data.data) for rater, clf in fitted.items()}
    mean = np.mean(list(proba.values()), axis=0)
    sets = [[[n for n, p in zip(data.label_names, (proba[r][i] if r in proba else mean[i]))
              if p >= THRESHOLD] for r in raters] for i, raters in enumerate(data.annotator_ids)]
    return mean, sets


def score(test, proba, sets, args) -> dict:
    """Task A and Task B with 95% bootstrap intervals over items."""
    report = alignment_report(test.target, proba, n_bootstrap=args.n_bootstrap,
                              random_state=args.seed)["model"]
    rates = perspectivist_error_rates(list(test.annotator_labels), sets, test.label_names)
    return {"task_a": report["manhattan"], "task_a_ci": report.get("manhattan_ci"),
            "task_b": float(rates.mean()),
            "task_b_ci": mean_interval(rates, n_bootstrap=args.n_bootstrap,
                                       random_state=args.seed)}


def run_systems(train, parts: dict, args) -> dict[str, dict]:
    """Every row on every evaluated part: ``row -> part -> scores``."""
    rows: dict[str, dict] = {}

    def add(name, predict):
        rows[name] = {}
        for part, data in parts.items():
            proba, sets = predict(data)
            rows[name][part] = score(data, np.asarray(proba, dtype=float), sets, args)
        print(f"  {name}: " + "; ".join(
            f"{part} A {r['task_a']:.3f} B {r['task_b']:.3f}" for part, r in rows[name].items()),
            flush=True)

    prior = train.target.mean(axis=0)
    add("most frequent (library)",
        lambda d: (np.tile(prior, (len(d.data), 1)), most_frequent_sets(train, d)))
    add("random (library)",
        lambda d: (np.full(d.target.shape, 0.5), random_sets(d, args.seed)))
    tfidf = make_pipeline(TfidfVectorizer(min_df=2), DistributionCalibrator(method="linear"))
    tfidf.fit(train.data, train.target)
    add("TF-IDF + linear", lambda d: (p := tfidf.predict_proba(d.data), one_set_for_all(p, d)))
    encoder = EncoderMultiLabelClassifier(
        **({} if args.encoder_model is None else {"model": args.encoder_model}),
        labels=train.label_names, max_epochs=args.max_epochs, random_state=args.seed,
        show_progress=args.progress).fit(train.data, train.target)
    add("fine-tuned encoder (MiniLM)",
        lambda d: (p := encoder.predict_proba(d.data), one_set_for_all(p, d)))
    common = {"model": args.model, "labels": train.label_names, "n_shots": args.n_shots,
              "cache_dir": args.cache_dir, "random_state": args.seed,
              "show_progress": args.progress}
    llm = LLMMultiLabelClassifier(**common).fit(train.data, train.target)
    for name, aggregation in (("LLM, max over steps", "max"), ("LLM, unary breakdown", "unary")):
        llm.set_params(aggregation=aggregation)
        add(name, lambda d: (p := llm.predict_proba(d.data), one_set_for_all(p, d)))
    annotators = LLMMultiLabelClassifier(**common, demo_selection="annotator").fit(
        train.data, train.target, annotator_labels=train.annotator_labels,
        annotator_ids=train.annotator_ids)
    add("LLM, one prompt per annotator (max)",
        lambda d: (annotators.predict_proba(d.data), per_annotator_sets(annotators, d)))
    for with_metadata in (False, True):  # does the annotator's metadata help? (read on dev)
        fitted = one_estimator_per_annotator(train, common, with_metadata)
        add("LLM, one estimator per annotator" + (", metadata in the instruction"
                                                  if with_metadata else ""),
            lambda d, fitted=fitted: from_annotator_estimators(fitted, d))
    return rows


def _cell(value, interval) -> str:
    return f"{value:.3f}" + ("" if interval is None else
                             f" [{interval[0]:.3f}, {interval[1]:.3f}]")


def to_markdown(rows: dict, sizes: dict, args, command: str, seconds: float) -> str:
    parts = list(next(iter(rows.values())))
    items = ", ".join(f"{k} {v}" for k, v in sizes.items())
    lines = ["# VariErrNLI (LeWiDi 2025) beside the shared task's systems", "",
             f"Command: `{command}` (this run: {seconds / 60:.0f} min; with an empty step "
             "cache, about 11 min on a 2-core CPU). Model: "
             f"`{args.model}`, {args.n_shots} shots, threshold {THRESHOLD} (fixed before any "
             "run: no setting was chosen on dev or test; dev is shown for comparison); "
             f"items: {items}. Task A: multi-label average Manhattan distance; Task B: "
             "multi-label error rate (both lower is better; 95% bootstrap intervals over "
             f"items, {args.n_bootstrap} resamples). Where each row stands and what would move "
             "it: [the discussion](lewidi2025_discussion.md).", "",
             "| system | " + " | ".join(f"{p} A | {p} B" for p in parts) + " |",
             "|---" * (1 + 2 * len(parts)) + "|"]
    for name, by_part in rows.items():
        cells = [c for p in parts for c in (_cell(by_part[p]["task_a"], by_part[p]["task_a_ci"]),
                                            _cell(by_part[p]["task_b"], by_part[p]["task_b_ci"]))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, value in PUBLISHED:
        cells = [""] * (2 * len(parts))
        if "test" in parts:
            cells[2 * parts.index("test") + 1] = f"{value:.3f} (published)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _command(argv: list[str]) -> str:
    """The command that repeats the run, without the options that do not change its numbers
    (where records are cached, progress bars)."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--cache-dir":
            skip = True
        elif word != "--progress" and not word.startswith("--cache-dir="):
            words.append(word)
    return " ".join(["python examples/lewidi2025_varierrnli.py", *words])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--max-epochs", type=int, default=8, help="the encoder's epochs")
    parser.add_argument("--encoder-model", default=None, help="the encoder (default MiniLM)")
    parser.add_argument("--limit-train", type=int, default=None, help="a slice, for a quick run")
    parser.add_argument("--limit-eval", type=int, default=None, help="a slice of dev and test")
    parser.add_argument("--cache-dir", default=None, help="step cache (re-runs score nothing)")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--out", default=None, help="write a Markdown page (and .json beside it)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = get_data_home(args.data_home) / "lewidi2025" / "VariErrNLI"
    import warnings

    with warnings.catch_warnings():  # the released metadata file's trailing commas
        warnings.simplefilter("ignore")
        train, dev, test = (load_lewidi2025(folder / f"VariErrNLI_{s}.json")
                            for s in ("train", "dev", "test"))
    if args.limit_train:
        train = subset(train, np.arange(min(args.limit_train, len(train.data))))
    parts = {"dev": dev, "test": test}
    if args.limit_eval:
        parts = {k: subset(v, np.arange(min(args.limit_eval, len(v.data))))
                 for k, v in parts.items()}
    sizes = {"train": len(train.data), **{k: len(v.data) for k, v in parts.items()}}
    print(f"VariErrNLI: {sizes}, labels {train.label_names}", flush=True)
    rows = run_systems(train, parts, args)
    seconds = time.perf_counter() - start
    markdown = to_markdown(rows, sizes, args, _command(sys.argv[1:] if argv is None else argv),
                           seconds)
    print("\n" + markdown)
    if args.out:
        out = Path(args.out)
        out.write_text(markdown + "\n", encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(
            {"sizes": sizes, "rows": rows, "published_test_task_b": dict(PUBLISHED)}, indent=1)
            + "\n", encoding="utf-8")
        print(f"wrote {out}")
    plot(rows)
    return rows


def plot(rows: dict):
    """Test-set Task B error rates with their intervals beside the published ones, handed to
    pyplot so that a notebook or the documentation shows it."""
    import matplotlib.pyplot as plt

    part = "test" if "test" in next(iter(rows.values())) else next(iter(next(iter(rows.values()))))
    names = list(rows) + [name.split(" (")[0] + " *" for name, _ in PUBLISHED]
    values = [rows[n][part]["task_b"] for n in rows] + [v for _, v in PUBLISHED]
    errors = [[0, 0] if rows[n][part]["task_b_ci"] is None else
              [rows[n][part]["task_b"] - rows[n][part]["task_b_ci"][0],
               rows[n][part]["task_b_ci"][1] - rows[n][part]["task_b"]] for n in rows]
    errors += [[0, 0]] * len(PUBLISHED)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))[::-1]
    colours = ["tab:blue"] * len(rows) + ["tab:grey"] * len(PUBLISHED)
    ax.barh(y, values, xerr=np.array(errors).T, color=colours, capsize=3)
    ax.set_yticks(y, names)
    ax.set_xlabel(f"Task B error rate on {part} (lower is better; * published)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
