"""The evaluation experiment of ``sklml evaluate``, as a function that returns a report.

:func:`evaluate_strategies` fits :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier`
on a training set, scores a test set with every aggregation asked for (one
decoding per text serves them all), adds the baselines (the constant prior
and a TF-IDF model with :class:`~sklearn_llm_multilabel.DistributionCalibrator`),
and returns an :class:`EvaluationReport`: the metrics table, the probabilities,
the fitted estimator and the run's settings, with methods to print and save it.
A notebook gets the same report as the command line.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._aggregation import AGGREGATIONS
from ._jsontext import json_text
from .backends._specs import DEFAULT_MODEL
from .metrics import alignment_report
from .metrics._bootstrap import check_n_bootstrap, interval_refusal
from .metrics._scorer import ALIGNMENT_METRICS

PRIOR = "constant prior"
TFIDF = "tf-idf + linear"
#: the column of LeWiDi's perspectivist error rate (each annotator's labels against the
#: predicted label set), when the test set names each annotator's labels
ERROR_RATE = "error_rate"


@dataclass
class EvaluationReport:
    """What :func:`evaluate_strategies` measured.

    Attributes
    ----------
    rows : dict
        ``method -> {metric: value}``: the constant prior first, then one row
        per aggregation (and its Platt-calibrated row when asked for), then
        the TF-IDF baseline.
    probas : dict
        ``method -> (n_test, n_labels)`` probabilities (every row but the prior).
    llm_rows : list of str
        The rows that come from the LLM.
    estimator : LLMMultiLabelClassifier
        The fitted estimator, set to the saved aggregation.
    label_names : list of str
    y_test : ndarray of shape (n_test, n_labels)
        The test set's annotator proportions.
    settings : dict
        The run: sizes, labels, model, shots, seed, strategies, saved
        aggregation, threshold, package versions, run time, what the model
        wrote (``unknown_labels``: texts whose generation names labels outside
        the label set, and the most frequent names; ``dominant_generation``:
        a label list written for most test texts, or None), and what the
        caller added (data path, format).
    test_ids, test_texts : list of str or None
        The test part's ids and texts, for ``test_predictions.csv``.
    prior : ndarray of shape (n_labels,) or None
        The constant prior's probabilities (the training proportions' means).
    """

    rows: dict[str, dict[str, float]]
    probas: dict[str, np.ndarray]
    llm_rows: list[str]
    estimator: object
    label_names: list[str]
    y_test: np.ndarray
    settings: dict = field(default_factory=dict)
    test_ids: list[str] | None = None
    test_texts: list[str] | None = None
    prior: np.ndarray | None = None

    @property
    def baselines(self) -> list[str]:
        """The rows that are not the LLM's."""
        return [name for name in self.rows if name not in self.llm_rows]

    def beaten_by_baselines(self) -> dict[str, list[str]]:
        """``metric -> baselines`` better than every LLM row on that metric."""
        found = {}
        for metric, (_, greater) in ALIGNMENT_METRICS.items():
            sign = 1 if greater else -1
            best = max(sign * self.rows[name][metric] for name in self.llm_rows)
            beaten = [name for name in self.baselines if sign * self.rows[name][metric] > best]
            if beaten:
                found[metric] = beaten
        return found

    def notes(self) -> list[str]:
        """What a reader of the table should know: one note naming, per baseline, the metrics
        on which it beats every LLM row, and why the constant prior's example-F1 is high when
        most test items have no label."""
        beaten: dict[str, list[str]] = {}
        for metric, names in self.beaten_by_baselines().items():
            for name in names:
                beaten.setdefault(name, []).append(metric)
        notes = []
        if beaten:
            notes.append("Note: " + "; ".join(
                f"{name} beats every LLM row on {', '.join(metrics)}"
                for name, metrics in beaten.items()) + ".")
        threshold = self.settings.get("threshold", 0.5)
        if self.prior is not None and np.all(self.prior < threshold) and len(self.y_test):
            empty = float(np.mean((self.y_test >= 0.5).sum(axis=1) == 0))
            if empty >= 0.5:
                notes.append(
                    f"Note: the constant prior predicts no label for any text (every training "
                    f"proportion is below {threshold:g}), and {100 * empty:.0f}% of the test "
                    "items have no label that half their annotators chose; an item with no label "
                    "on both sides scores an example-F1 of 1, hence the prior's high example_f1. "
                    "Read it with nll and l1." + (
                        "" if self.settings.get("include_empty_demos", True) else
                        " Consider --include-empty-demos, which lets the model see "
                        "demonstrations with no label."))
        return notes

    @property
    def metrics(self) -> list[str]:
        """The table's columns: the alignment metrics, and ``error_rate`` (LeWiDi's
        perspectivist error rate) when the test set names each annotator's labels."""
        found = list(ALIGNMENT_METRICS)
        return found + ([ERROR_RATE] if any(ERROR_RATE in r for r in self.rows.values()) else [])

    def to_markdown(self) -> str:
        """The table (↓ lower is better, ↑ higher is better), then the :meth:`notes`."""
        metrics = self.metrics
        arrows = {m: "↑" if _greater(m) else "↓" for m in metrics}
        lines = ["| method | " + " | ".join(f"{m} {arrows[m]}" for m in metrics) + " |",
                 "|---" * (len(metrics) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_cell(row, m) for m in metrics) + " |"
                  for name, row in self.rows.items()]
        for name, error in self.settings.get("failed_baselines", {}).items():
            lines.append(f"| {name} | failed: {error} |" + " |" * (len(metrics) - 1))
        if self.settings.get("no_intervals"):
            lines.append(f"\n{self.settings['no_intervals'].capitalize()}.")
        if any(f"{m}_ci" in row for row in self.rows.values() for m in metrics):
            confidence = self.settings.get("confidence", 0.95)
            lines.append(f"\n± half the width of a {100 * confidence:.0f}% bootstrap interval "
                         f"over test texts ({self.settings.get('n_bootstrap')} resamples); ▲ better, "
                         "▼ worse than the constant prior, where the paired interval of the "
                         "difference excludes 0.")
        lines += ["\n" + note for note in self.notes()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: the settings and the metrics."""
        return {**self.settings, "results": self.rows}

    def save(self, out: str | Path, *, title: str = "") -> list[Path]:
        """Write ``results.json``, ``results.csv``, ``estimator.skops`` (and its plan),
        ``test_predictions.csv`` (when the report has the test texts) and the figures
        (``metrics.png``, ``reliability.png``, ``reliability_<method>.png``) into ``out``.

        Returns
        -------
        paths : list of Path
            The files written.
        """
        from .persistence import ESTIMATOR_FILE, save_estimator
        from .plotting import plot_metric_bars, plot_reliability, plot_reliability_comparison

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "results.csv", out / ESTIMATOR_FILE]
        written[0].write_text(json_text(self.to_dict()), encoding="utf-8")
        metrics = self.metrics
        with open(written[1], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            intervals = [m for m in metrics if any(f"{m}_ci" in r for r in self.rows.values())]
            writer.writerow(["method", *metrics,
                             *(f"{m}_{end}" for m in intervals for end in ("low", "high"))])
            for name, row in self.rows.items():
                writer.writerow([name, *(row[m] for m in metrics),
                                 *(v for m in intervals for v in row.get(f"{m}_ci", ("", "")))])
        save_estimator(self.estimator, written[2])
        from ._plan import plan_path

        if plan_path(written[2]).is_file():  # what a fully stored sklml predict reads
            written.append(plan_path(written[2]))
        if self.test_texts is not None:
            written.append(self.write_test_predictions(out / "test_predictions.csv"))
        about = title or f"{self.settings.get('model', '')}, {len(self.y_test)} test texts"
        figures = {"metrics.png": plot_metric_bars(self.rows, baselines=self.baselines,
                                                   title=about),
                   "reliability.png": plot_reliability_comparison(
                       self.y_test, self.probas, title=f"Reliability: {about}")}
        for name, proba in self.probas.items():
            slug = name.replace(" + ", "_").replace(" ", "_").replace("-", "")
            figures[f"reliability_{slug}.png"] = plot_reliability(
                self.y_test, proba, self.label_names,
                title=f"Reliability per label: {name}\n{about}")
        for name, fig in figures.items():
            fig.savefig(out / name)
            written.append(out / name)
        return written


    def write_test_predictions(self, path: str | Path) -> Path:
        """One row per test text: its id and text, the annotators' proportion of each label
        (``annotators:<label>``), then each method's probability of it (``<method>:<label>``)."""
        path = Path(path)
        n = len(self.y_test)
        ids = self.test_ids if self.test_ids is not None else [str(i) for i in range(n)]
        methods = list(self.probas)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", *(f"annotators:{label}" for label in self.label_names),
                             *(f"{method}:{label}" for method in methods
                               for label in self.label_names)])
            for i in range(n):
                writer.writerow([ids[i], self.test_texts[i],
                                 *(f"{v:.6g}" for v in self.y_test[i]),
                                 *(f"{v:.6f}" for method in methods for v in self.probas[method][i])])
        return path


def _cell(row: dict, metric: str) -> str:
    """``0.123``, or ``0.123 ± 0.010`` with an interval, marked ▲ (better) or ▼ (worse) when
    the paired interval of the difference from the constant prior excludes 0."""
    text = f"{row[metric]:.3f}"
    if f"{metric}_ci" in row:
        low, high = row[f"{metric}_ci"]
        text += f" ± {(high - low) / 2:.3f}"
    return text + prior_mark(row, metric)


def prior_mark(row: dict, metric: str) -> str:
    """`` ▲`` when the row is better than the constant prior on ``metric`` with a paired
    interval that excludes 0, `` ▼`` when worse, else ``""``."""
    diff = row.get(f"{metric}_vs_prior_ci")
    if diff is None or diff[0] <= 0 <= diff[1]:
        return ""
    return " ▲" if (diff[0] > 0) == _greater(metric) else " ▼"


def _greater(metric: str) -> bool:
    """Whether higher is better for a column of the table."""
    return False if metric == ERROR_RATE else ALIGNMENT_METRICS[metric][1]


def _generation_diagnostics(clf, texts, strategies: Sequence[str]) -> dict:
    """What the model wrote for the test texts (from the cache: no text is decoded again).

    ``unknown_labels``: :func:`~._diagnostics.unknown_label_summary`;
    ``dominant_generation``: :func:`~._diagnostics.dominant_generation` (None
    when no label list dominates). Empty when only breakdown strategies ran
    (they generate no label lists).
    """
    import warnings

    from ._aggregation import BREAKDOWN_AGGREGATIONS
    from ._diagnostics import dominant_generation, unknown_label_summary

    if all(s in BREAKDOWN_AGGREGATIONS for s in strategies):
        return {}
    with warnings.catch_warnings():  # the scoring call above already warned
        warnings.simplefilter("ignore")
        traces = clf.predict_steps(texts)
    return {"unknown_labels": unknown_label_summary([t["unknown_labels"] for t in traces]),
            "dominant_generation": dominant_generation(
                list(texts), [t["generated_text"] for t in traces])}


def _add_error_rates(rows: dict, probas: dict, annotator_labels, labels: list[str], threshold,
                     n_bootstrap: int, random_state) -> None:
    """Each row's perspectivist error rate (the label set ``proba >= threshold`` predicted for
    every annotator), with intervals on the same resamples as the other columns."""
    from ._validation import check_threshold
    from .metrics import perspectivist_error_rates
    from .metrics._bootstrap import bootstrap_means, percentile_interval

    thresholds = np.broadcast_to(check_threshold(threshold, len(labels)), (len(labels),))
    per_item = {}
    for name, proba in probas.items():
        predicted = [[n for n, p, t in zip(labels, row, thresholds) if p >= t] for row in proba]
        per_item[name] = perspectivist_error_rates(list(annotator_labels), predicted, labels)
        rows[name][ERROR_RATE] = float(per_item[name].mean())
    if n_bootstrap:
        draws = {name: bootstrap_means(values, n_bootstrap, random_state)
                 for name, values in per_item.items()}
        for name, values in draws.items():
            rows[name][f"{ERROR_RATE}_ci"] = percentile_interval(values, 0.95)
            if name != PRIOR:
                rows[name][f"{ERROR_RATE}_vs_prior_ci"] = percentile_interval(
                    values - draws[PRIOR], 0.95)


def annotator_fit_params(train, demo_selection: str) -> dict:
    """The ``fit`` keywords of ``demo_selection="annotator"`` from a dataset Bunch."""
    if demo_selection != "annotator":
        return {}
    if train.get("annotator_labels") is None or train.get("annotator_ids") is None:
        raise ValueError("demo_selection='annotator' needs each annotator's labels and id: "
                         "an annotator table with an annotator column or annotator columns "
                         "(--format annotations) or a Le-Wi-Di file (--format lewidi).")
    return {"annotator_labels": train.annotator_labels, "annotator_ids": train.annotator_ids}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("sklearn_llm_multilabel", "scikit-learn", "transformers", "torch", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def evaluate_strategies(
    train,
    test,
    *,
    strategies: Sequence[str] = ("first", "max", "hard"),
    model: str = DEFAULT_MODEL,
    n_shots: int = 10,
    include_empty_demos: bool | str = "auto",
    demo_selection: str = "stratified",
    n_prompts: int = 1,
    cache_dir=None,
    random_state: int = 0,
    calibrate: bool = False,
    saved_aggregation: str = "max",
    show_progress: bool = True,
    settings: dict | None = None,
    n_bootstrap: int = 0,
) -> EvaluationReport:
    """Fit on ``train``, score ``test`` with every strategy, and compare with baselines.

    Parameters
    ----------
    train, test : Bunch
        Datasets with ``data`` (texts), ``target`` (annotator proportions) and
        ``label_names``, as the loaders of :mod:`sklearn_llm_multilabel.datasets`
        return them.
    strategies : sequence of str, default=("first", "max", "hard")
        Aggregations to report, from ``first, max, mean, hard, unary, binary``.
    model : str, default="smollm2-135m-instruct"
    n_shots : int, default=10
    include_empty_demos : bool or "auto", default="auto"
        Also draw demonstrations with no label (see
        ``LLMMultiLabelClassifier(include_empty_demos=...)``).
    demo_selection : {"stratified", "knn", "annotator"}, default="stratified"
    n_prompts : int, default=1
        See ``LLMMultiLabelClassifier``: one draw for every text, the nearest
        training texts per text, one prompt per annotator (``train`` must hold
        ``annotator_labels`` and ``annotator_ids``), or several draws averaged.
    cache_dir : str, path or None, default=None
        Step cache folder (re-runs score nothing twice).
    random_state : int, default=0
        Seed of the demonstrations.
    calibrate : bool, default=False
        Also report a Platt-calibrated row per strategy, fitted on the
        training texts' scores (the demonstrations left out).
    saved_aggregation : str, default="max"
        The aggregation the returned estimator is set to (the paper's max over
        label-generation steps by default).
    show_progress : bool, default=True
    settings : dict or None
        Extra entries for the report's settings (a data path, a format).
    n_bootstrap : int, default=0
        Resamples of the test texts for 95% percentile intervals (see
        :func:`~sklearn_llm_multilabel.metrics.alignment_report`): every row
        gains ``<metric>_ci`` and every row but the prior's
        ``<metric>_vs_prior_ci``, paired (all rows share the resamples, drawn
        with ``random_state``). 0: no intervals.

    Returns
    -------
    EvaluationReport

    Examples
    --------
    >>> from sklearn_llm_multilabel import register_model
    >>> from sklearn_llm_multilabel.datasets import make_bunch
    >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
    >>> register_model("tiny-report", *make_tiny_model_and_tokenizer())
    >>> texts = ["rain fell", "the game", "rain and game", "sunny", "a vote", "snow day"]
    >>> ds = make_bunch(texts, [[1, 0], [0, 1], [1, 1], [1, 0], [0, 0], [1, 0]],
    ...                 ["weather", "sports"])
    >>> report = evaluate_strategies(ds, ds, strategies=["max"], model="tiny-report",
    ...                              n_shots=2, show_progress=False)
    >>> list(report.rows)
    ['constant prior', 'max', 'tf-idf + linear']
    >>> report.estimator.aggregation
    'max'
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    from ._calibration import DistributionCalibrator
    from ._classifier import LLMMultiLabelClassifier
    from .datasets import subset

    started = time.perf_counter()
    check_n_bootstrap(n_bootstrap, len(test.data))  # before any work
    no_intervals = interval_refusal(len(test.data), n_bootstrap)
    if no_intervals:
        n_bootstrap = 0
    strategies = list(strategies)
    unknown = [s for s in [*strategies, saved_aggregation] if s not in AGGREGATIONS]
    if unknown or not strategies:
        raise ValueError(f"strategies: unknown {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(AGGREGATIONS)}.")
    labels = list(train.label_names)
    clf = LLMMultiLabelClassifier(model=model, labels=labels, n_shots=n_shots,
                                  include_empty_demos=include_empty_demos,
                                  demo_selection=demo_selection, n_prompts=n_prompts,
                                  cache_dir=cache_dir, random_state=random_state,
                                  show_progress=show_progress).fit(
        train.data, train.target, **annotator_fit_params(train, demo_selection))
    rows: dict[str, dict[str, float]] = {}
    probas: dict[str, np.ndarray] = {}
    calibration = None
    if calibrate:  # the calibrator never sees the texts shown in the prompt
        keep = np.setdiff1d(np.arange(len(train.data)), clf.demonstration_indices_)
        calibration = subset(train, keep)

    def measure(proba):  # every row on the same resamples, each against the same prior
        return alignment_report(test.target, proba, train_proportions=train.target,
                                n_bootstrap=n_bootstrap, random_state=random_state)

    for strategy in strategies:
        proba = clf.set_params(aggregation=strategy).predict_proba(test.data)
        report = measure(proba)
        rows[strategy] = report["model"]
        probas[strategy] = proba
        if calibration is not None:
            platt = DistributionCalibrator(method="platt").fit(
                clf.predict_proba(calibration.data), calibration.target)
            name = f"{strategy} + platt"
            probas[name] = platt.predict_proba(proba)
            rows[name] = measure(probas[name])["model"]
    llm_rows = list(rows)
    tfidf = make_pipeline(TfidfVectorizer(min_df=2 if len(train.data) > 50 else 1),
                          DistributionCalibrator(method="linear"))
    failed = {}
    try:
        probas[TFIDF] = tfidf.fit(train.data, train.target).predict_proba(test.data)
    except ValueError as exc:  # e.g. texts without a word: an empty vocabulary
        failed[TFIDF] = " ".join(str(exc).split())
    else:
        rows[TFIDF] = measure(probas[TFIDF])["model"]
    rows = {PRIOR: report[PRIOR], **rows}
    prior = np.asarray(train.target, dtype=float).mean(axis=0)
    if test.get("annotator_labels") is not None:
        _add_error_rates(rows, {PRIOR: np.tile(prior, (len(test.data), 1)), **probas},
                         test.annotator_labels, labels, clf.threshold, n_bootstrap, random_state)
    clf.set_params(aggregation=saved_aggregation)
    generations = _generation_diagnostics(clf, test.data, strategies)
    run = {"n_train": len(train.data), "n_test": len(test.data), "labels": labels,
           "model": model, "n_shots": n_shots, "include_empty_demos": clf.include_empty_demos_,
           "demo_selection": demo_selection, "n_prompts": n_prompts,
           "seed": random_state, "strategies": strategies,
           "calibrate": bool(calibrate), "saved_aggregation": saved_aggregation,
           "n_bootstrap": n_bootstrap, "no_intervals": no_intervals,
           "failed_baselines": failed,
           "threshold": clf.threshold, **(settings or {}), "versions": _versions(),
           "runtime_seconds": round(time.perf_counter() - started, 1), **generations}
    return EvaluationReport(rows=rows, probas=probas, llm_rows=llm_rows, estimator=clf,
                            label_names=labels, y_test=np.asarray(test.target, dtype=float),
                            settings=run, prior=prior,
                            test_ids=[str(i) for i in test.get("ids", range(
                                len(test.data)))], test_texts=list(test.data))
