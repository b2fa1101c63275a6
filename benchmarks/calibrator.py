"""DistributionCalibrator(method="linear") on TF-IDF features: fit time and reproducibility.

The CLI's TF-IDF baseline on MFRC (2,400 training texts, 400 test texts, the
N = 3 subset): soft-target logistic regression per label on the TF-IDF
features as they are (the default for sparse features), against the paper's
probe rule applied to them (TruncatedSVD to ``max(d / 4, 512)`` components,
the default for sparse features in earlier versions), seeded and unseeded.
Each setting is fitted twice, interleaved, so the table shows the time ratio
and whether two identical fits agree.

Run (a few minutes on a 2-core CPU)::

    .venv/bin/python benchmarks/calibrator.py --out docs/results/calibrator.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from sklearn_llm_multilabel import DistributionCalibrator
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch
from sklearn_llm_multilabel.metrics import distribution_l1, distribution_nll

SETTINGS = [  # (row, calibrator parameters; "svd" stands for the paper's rule on these features)
    ("default (no SVD for sparse features, seeded)", {}),
    ("paper's probe rule (SVD), seeded", {"n_components": "svd", "random_state": 0}),
    ("paper's probe rule (SVD), unseeded (earlier default)", {"n_components": "svd",
                                                              "random_state": None}),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    train, test = train_test_split_bunch(load_mfrc(), train_size=args.n_train,
                                         test_size=args.n_test, random_state=0)
    vectorizer = TfidfVectorizer(min_df=2).fit(train.data)
    X_train, X_test = vectorizer.transform(train.data), vectorizer.transform(test.data)
    d = X_train.shape[1]
    results = {name: {"seconds": [], "nll": [], "l1": [], "proba": []} for name, _ in SETTINGS}
    for _ in range(2):  # interleaved repeats
        for name, params in SETTINGS:
            params = dict(params)
            if params.get("n_components") == "svd":
                params["n_components"] = max(d // 4, 512)
            start = time.perf_counter()
            cal = DistributionCalibrator(method="linear", **params).fit(X_train, train.target)
            results[name]["seconds"].append(time.perf_counter() - start)
            P = cal.predict_proba(X_test)
            results[name]["proba"].append(P)
            results[name]["nll"].append(distribution_nll(test.target, P))
            results[name]["l1"].append(distribution_l1(test.target, P))
            print(f"{name}: {results[name]['seconds'][-1]:.1f} s, NLL {results[name]['nll'][-1]:.4f}",
                  flush=True)
    base = np.median(results[SETTINGS[0][0]]["seconds"])
    rows = []
    for name, _ in SETTINGS:
        r = results[name]
        rows.append({"row": name, "median_seconds": float(np.median(r["seconds"])),
                     "time_ratio": float(np.median(r["seconds"]) / base),
                     "nll": r["nll"], "l1": r["l1"],
                     "max_abs_diff_between_fits": float(np.abs(r["proba"][0] - r["proba"][1]).max())})
    result = {"n_train": args.n_train, "n_test": args.n_test, "n_features": d, "rows": rows}
    print(json.dumps(result, indent=1))
    if args.out:
        lines = ["# DistributionCalibrator on TF-IDF features", "",
                 "Command: `python benchmarks/calibrator.py --out docs/results/calibrator.md`", "",
                 f"MFRC, {args.n_train} training and {args.n_test} test texts, {d} TF-IDF features "
                 "(`min_df=2`), `DistributionCalibrator(method='linear')`; two fits per row, "
                 "interleaved.", "",
                 "| setting | median fit time (s) | time ÷ default | NLL ↓ (fit 1, fit 2) "
                 "| L1 ↓ (fit 1, fit 2) | max abs Δ between the two fits |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['row']} | {r['median_seconds']:.1f} | {r['time_ratio']:.1f} | "
                         f"{r['nll'][0]:.4f}, {r['nll'][1]:.4f} | {r['l1'][0]:.4f}, {r['l1'][1]:.4f} | "
                         f"{r['max_abs_diff_between_fits']:.2g} |")
        out = Path(args.out)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
