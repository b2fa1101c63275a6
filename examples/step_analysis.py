"""Analyse label-generation step distributions and plot them.
==========================================================

Fits the classifier (its demonstrations), reads every test text's step
distributions with ``predict_steps``, prints the paper's step statistics and
writes two figures: the top / second probability and entropy per step index,
and the first step's distribution against the final output.

Run: ``.venv/bin/python examples/step_analysis.py --out step-analysis``
(MFRC from ``../shared/data`` when present, else the bundled illustrative set).
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.analysis import summarize_steps, summary_markdown
from sklearn_llm_multilabel.datasets import (
    load_illustrative_topics,
    load_mfrc,
    train_test_split_bunch,
)
from sklearn_llm_multilabel.plotting import plot_first_step_vs_output, plot_step_statistics


def load(dataset: str, n_test: int):
    data = load_mfrc() if dataset == "mfrc" else load_illustrative_topics()
    n_test = min(n_test, len(data.data) // 2)
    n_train = min(2000, len(data.data) - n_test)
    return train_test_split_bunch(data, train_size=n_train, test_size=n_test, random_state=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", choices=("mfrc", "illustrative"), default=None)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--out", default="step-analysis")
    args = parser.parse_args(argv)
    dataset = args.dataset
    if dataset is None:
        try:
            load_mfrc()
            dataset = "mfrc"
        except FileNotFoundError:
            dataset = "illustrative"

    train, test = load(dataset, args.n_test)
    clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names, n_shots=args.n_shots)
    clf.fit(train.data, train.target)
    traces = clf.predict_steps(test.data)
    names = [*clf.label_names_, clf.none_label]
    summary = summarize_steps(traces, names)
    print(summary_markdown(summary))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for fig, name in ((plot_step_statistics(traces, names), "step_statistics.png"),
                      (plot_first_step_vs_output(traces, names), "first_step_vs_output.png")):
        fig.savefig(out / name)
        plt.figure(fig)  # handed to pyplot, so a notebook or the documentation shows it
    print(f"wrote {out / 'step_statistics.png'} and {out / 'first_step_vs_output.png'}")
    return summary


# %%
# The first figure shows, per label-generation step, how peaked the label distribution
# is; the second compares the first step's distribution with the labels the model
# finally wrote: the first step alone misses most of the final label set.

if __name__ == "__main__":
    main()
