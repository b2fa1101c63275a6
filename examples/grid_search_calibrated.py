"""Grid search over aggregation x calibrator x threshold, scored with alignment_scorers().
=======================================================================================

A Pipeline ``LLMMultiLabelClassifier -> DistributionCalibrator`` is searched
over the aggregation strategy, the calibration method and the decision
threshold with every alignment metric (NLL, L1, example-F1, ...) at once. The
distribution metrics read ``predict_proba`` and do not depend on the
threshold; the F1 scorers read the pipeline's ``predict``, so the threshold is
tuned on them: the script reports the best threshold by example-F1 for the
NLL-best aggregation and calibration. The model decodes each text once per
fold's prompt; every other candidate reads the step cache, which the script
shows with the model's work counter.

Run: ``.venv/bin/python examples/grid_search_calibrated.py [--model SPEC]``
"""

import argparse

from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sklearn_llm_multilabel import (
    DistributionCalibrator,
    LLMMultiLabelClassifier,
    get_scoring_stats,
    reset_scoring_stats,
)
from sklearn_llm_multilabel.datasets import load_illustrative_topics
from sklearn_llm_multilabel.metrics import alignment_scorers


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n-shots", type=int, default=6)
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args(argv)

    ds = load_illustrative_topics()
    pipeline = Pipeline([
        ("llm", LLMMultiLabelClassifier(model=args.model, labels=ds.label_names,
                                        n_shots=args.n_shots, show_progress=False)),
        ("calibrator", DistributionCalibrator()),
    ])
    grid = GridSearchCV(
        pipeline,
        {"llm__aggregation": ["first", "max", "mean", "hard"],
         "calibrator__method": ["platt", "temperature", "isotonic"],
         "calibrator__threshold": [0.2, 0.35, 0.5]},
        scoring=alignment_scorers(),
        refit="nll",
        cv=KFold(args.folds, shuffle=True, random_state=0),
    )
    reset_scoring_stats()
    grid.fit(ds.data, ds.target)
    n_candidates = len(grid.cv_results_["params"])
    decoded = get_scoring_stats()["texts_scored"]
    print(f"{n_candidates} candidates x {args.folds} folds; texts decoded by the model: {decoded} "
          f"({len(ds.data)} texts, once per fold prompt and once for the refit; without the "
          f"cache: {n_candidates * args.folds * len(ds.data) + len(ds.data)})")
    print("best (by NLL):", grid.best_params_)
    for metric in ("nll", "l1", "example_f1"):
        score = grid.cv_results_[f"mean_test_{metric}"][grid.best_index_]
        print(f"  {metric}: {abs(score):.3f}")
    # NLL does not depend on the threshold; example-F1 (read from predict) does
    best = grid.best_params_
    print(f"example-F1 by threshold ({best['llm__aggregation']}, {best['calibrator__method']}):")
    for params, f1 in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_example_f1"]):
        if all(params[k] == best[k] for k in ("llm__aggregation", "calibrator__method")):
            print(f"  threshold {params['calibrator__threshold']:.2f}: {f1:.3f}")
    plot_candidates(grid.cv_results_)
    return grid


def plot_candidates(results, n_best: int = 12):
    """Cross-validated NLL of each (aggregation, calibrator) pair: NLL does not depend on the
    threshold, so each pair is one bar."""
    import matplotlib.pyplot as plt

    nll = {}
    for params, score in zip(results["params"], results["mean_test_nll"]):
        nll[f"{params['llm__aggregation']} + {params['calibrator__method']}"] = -score
    names = sorted(nll, key=nll.get)[:n_best]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.barh(names, [nll[n] for n in names], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("mean cross-validated NLL (lower is better)")
    ax.set_title("LLM aggregation + calibrator, inside one Pipeline")
    fig.tight_layout()
    return fig


# %%
# A calibrator fitted on the LLM's scores is the last step of one Pipeline, so the
# aggregation, the calibration method and the threshold are searched together; the
# model still decodes each text once per fold prompt.

if __name__ == "__main__":
    main()
