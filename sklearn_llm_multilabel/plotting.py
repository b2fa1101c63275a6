"""Figures for reports: step distributions, reliability diagrams, metrics by strategy.

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, no display needed); save it with
``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from .analysis import step_table

#: panel titles of :func:`plot_metric_bars` for the alignment metrics
_METRIC_TITLES = {"nll": "NLL (lower is better)", "l1": "L1 (lower is better)",
                  "example_f1": "example-F1 (higher is better)",
                  "brier": "Brier (lower is better)", "ece": "ECE (lower is better)"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_step_statistics(traces: Sequence[dict], label_names: Sequence[str]):
    """Top / second probability and entropy per step index (means, then histograms).

    Intermediate and last steps are drawn separately, as in the paper's
    analysis: the top row shows means per step index (marker area grows with
    the number of steps averaged), the bottom row the distribution of each
    statistic.

    Examples
    --------
    >>> trace = {"has_steps": True, "step_labels": ["a", "b"],
    ...          "step_distributions": np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])}
    >>> fig = plot_step_statistics([trace], ["a", "b", "none"])
    >>> len(fig.axes)
    6
    >>> one = {"has_steps": True, "step_labels": ["a"], "step_distributions": np.array([[.9, .05, .05]])}
    >>> len(plot_step_statistics([one], ["a", "b", "none"]).axes)  # no intermediate steps
    6
    """
    table = step_table(traces, label_names)
    fig = _figure(12, 6.5)
    axes = fig.subplots(2, 3)
    stats = (("top", "top probability", (0, 1.02)), ("second", "second-highest probability", (0, 1.02)),
             ("entropy_bits", "entropy (bits)", (0, max(1.0, np.log2(len(label_names))))))
    parts = (("intermediate", ~table.is_last, "tab:blue"), ("last", table.is_last, "tab:orange"))
    for col, (key, title, limits) in enumerate(stats):
        ax = axes[0, col]
        for name, mask, color in parts:
            steps = np.unique(table.step[mask])
            if not len(steps):  # e.g. no intermediate steps when every text has one label
                continue
            means = np.array([table[key][mask & (table.step == r)].mean() for r in steps])
            counts = np.array([(mask & (table.step == r)).sum() for r in steps])
            # lines join consecutive step indices only; marker area follows the count
            for run in np.split(np.arange(len(steps)), np.flatnonzero(np.diff(steps) > 1) + 1):
                ax.plot(steps[run] + 1, means[run], color=color)
            ax.scatter(steps + 1, means, s=12 + 60 * np.sqrt(counts / max(counts.max(), 1)),
                       color=color, label=f"{name} steps")
        ax.set(title=f"mean {title}", xlabel="step index", ylim=limits)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1, col]
        bins = np.linspace(*limits, 21)
        for name, mask, color in parts:
            if mask.any():
                ax.hist(table[key][mask], bins=bins, alpha=0.6, color=color, label=f"{name} steps")
        ax.set(title=f"{title}, all steps", xlabel=title, ylabel="steps")
        ax.legend(fontsize=8)
    fig.suptitle(f"Label-generation step distributions ({len(table.step)} steps, "
                 f"{len(np.unique(table.text))} texts)")
    return fig


def plot_first_step_vs_output(traces: Sequence[dict], label_names: Sequence[str]):
    """Mean first-step distribution (left) and how often each label is in the output (right).

    Two panels, one unit each: the first step's mean probability per label,
    and the share of texts whose generation writes the label. The empty-set
    word is shown only where it has a share or a probability of at least 1%.

    Examples
    --------
    >>> trace = {"has_steps": True, "step_labels": ["a", "b"],
    ...          "step_distributions": np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])}
    >>> fig = plot_first_step_vs_output([trace], ["a", "b", "none"])
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['mean probability at the first step', 'share of texts']
    """
    names = list(label_names)
    with_steps = [t for t in traces if t.get("has_steps", True)]
    first = np.array([np.asarray(t["step_distributions"], dtype=float)[0] for t in with_steps])
    output = np.array([[name in t["step_labels"] for name in names] for t in with_steps], dtype=float)
    keep = list(range(len(names)))
    if len(with_steps) and max(first[:, -1].mean(), output[:, -1].mean()) < 0.01:
        keep = keep[:-1]  # the empty-set word, never written and never likely
    fig = _figure(max(8, 0.9 * len(keep) + 3), 4)
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(keep))
    panels = [(axes[0], first, "mean probability at the first step", "tab:orange"),
              (axes[1], output, "share of texts", "tab:blue")]
    for ax, values, ylabel, color in panels:
        if len(with_steps):
            bars = ax.bar(x, values[:, keep].mean(0), color=color)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, [names[k] for k in keep], rotation=45, ha="right")
        ax.set(ylabel=ylabel, ylim=(0, 1.1))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("first step: mean distribution")
    axes[1].set_title("final output: labels written")
    fig.suptitle(f"First step versus final output ({len(with_steps)} texts)")
    return fig


def plot_label_alignment(y_true, proba_first, proba_max, label_names: Sequence[str], *,
                         title: str = ""):
    """The paper's view, per label: first-step probability, max over steps, and annotators.

    For every label, the mean compare-to-none probability at the first step,
    the mean max-over-steps probability and the mean annotator proportion,
    side by side in one unit (a probability or a share of annotators), with
    each bar's value written on it. The closer a bar to the annotators' bar,
    the better aligned that reading is on average.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions.
    proba_first, proba_max : array-like of shape (n_samples, n_labels)
        ``predict_proba`` with ``aggregation="first"`` and ``"max"``.
    label_names : sequence of str
    title : str, default=""
        Added to the figure title (dataset and model, for instance).

    Examples
    --------
    >>> H = np.array([[1.0, 0.0], [0.5, 0.0]])
    >>> fig = plot_label_alignment(H, [[0.9, 0.9], [0.8, 0.9]], [[0.9, 0.2], [0.7, 0.1]],
    ...                            ["care", "purity"], title="demo")
    >>> fig.axes[0].get_ylabel()
    'mean probability / annotator share'
    """
    H, first, best = (np.asarray(a, dtype=float) for a in (y_true, proba_first, proba_max))
    names = list(label_names)
    fig = _figure(max(6, 0.9 * len(names) + 2), 4)
    ax = fig.subplots()
    x = np.arange(len(names))
    series = [("first step (compare-to-none)", first, "tab:orange"),
              ("max over steps", best, "tab:blue"), ("annotators", H, "0.35")]
    width = 0.8 / len(series)
    for k, (label, values, color) in enumerate(series):
        means = values.mean(axis=0)
        bars = ax.bar(x + (k - 1) * width, means, width=width, label=label, color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set(ylabel="mean probability / annotator share", ylim=(0, 1.3),
           title=f"Per label: first step, max over steps and annotators ({len(H)} texts)"
                 + (f"\n{title}" if title else ""))
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int):
    """Bin means of ``p`` and ``y`` and bin counts over equal-width bins (empty ones dropped)."""
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    keep = counts > 0
    xs = np.bincount(which, weights=p, minlength=n_bins)[keep] / counts[keep]
    ys = np.bincount(which, weights=y, minlength=n_bins)[keep] / counts[keep]
    return xs, ys, counts[keep]


def _marker_sizes(counts: np.ndarray, total: int) -> np.ndarray:
    return 10 + 150 * np.sqrt(counts / max(total, 1))


def _reliability_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly aligned")
    # a margin, so that points at exactly 0 or 1 (hard predictions) stay visible
    ax.set(xlabel="predicted probability (bin mean)", ylabel="annotator share (bin mean)",
           xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), title=title)
    ax.grid(alpha=0.3)


def plot_reliability(y_true, proba, label_names: Sequence[str], *, n_bins: int = 10,
                     title: str = "Reliability"):
    """Per-label reliability diagram: binned predicted probability vs. mean annotator share.

    Marker areas follow the number of texts in each bin.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions in [0, 1] (or 0/1 gold labels).
    proba : array-like of shape (n_samples, n_labels)
    label_names : sequence of str
    n_bins : int, default=10
        Equal-width bins on [0, 1]; empty bins are skipped.
    title : str, default="Reliability"

    Examples
    --------
    >>> fig = plot_reliability([[1.0, 0.0], [0.5, 0.0]], [[0.9, 0.1], [0.4, 0.2]], ["a", "b"])
    >>> len(fig.axes[0].lines)
    3
    """
    y_true, proba = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
    if y_true.shape != proba.shape or y_true.ndim != 2 or y_true.shape[1] != len(label_names):
        raise ValueError(f"y_true {y_true.shape} and proba {proba.shape} must both be "
                         f"(n_samples, {len(label_names)}).")
    fig = _figure(6, 5)
    ax = fig.subplots()
    _reliability_axes(ax, title)
    for k, name in enumerate(label_names):
        xs, ys, counts = _reliability_bins(y_true[:, k], proba[:, k], n_bins)
        (line,) = ax.plot(xs, ys, label=name)
        ax.scatter(xs, ys, s=_marker_sizes(counts, len(proba)), color=line.get_color(), alpha=0.7)
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_reliability_comparison(y_true, probas: Mapping[str, np.ndarray], *, n_bins: int = 10,
                                title: str = "Reliability"):
    """One reliability diagram comparing methods, every label pooled, bins sized by count.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        Annotator proportions.
    probas : mapping
        ``method name -> (n_samples, n_labels)`` probabilities.
    n_bins : int, default=10
    title : str, default="Reliability"
        Put the dataset and the model here.

    Examples
    --------
    >>> H = np.array([[1.0, 0.0], [0.5, 0.0]])
    >>> fig = plot_reliability_comparison(H, {"max": [[0.9, 0.1], [0.4, 0.2]],
    ...                                       "hard": [[1.0, 0.0], [1.0, 0.0]]})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['perfectly aligned', 'max', 'hard']
    """
    H = np.asarray(y_true, dtype=float)
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    _reliability_axes(ax, title)
    for name, proba in probas.items():
        proba = np.asarray(proba, dtype=float)
        if proba.shape != H.shape:
            raise ValueError(f"probas[{name!r}] has shape {proba.shape}; y_true has {H.shape}.")
        xs, ys, counts = _reliability_bins(H.ravel(), proba.ravel(), n_bins)
        (line,) = ax.plot(xs, ys, label=name)
        ax.scatter(xs, ys, s=_marker_sizes(counts, H.size), color=line.get_color(), alpha=0.7)
    ax.legend(fontsize=7, ncol=2, title=f"marker area: texts × labels per bin (of {H.size})",
              title_fontsize=7)
    return fig


def plot_metric_bars(results: Mapping[str, Mapping[str, float]],
                     metrics: Sequence[str] = ("nll", "l1", "example_f1"), *,
                     baselines: Sequence[str] = (), title: str = ""):
    """Bar chart of metrics by strategy (one panel per metric), values on the bars.

    Parameters
    ----------
    results : mapping
        ``strategy -> {metric name: value}``.
    metrics : sequence of str
        Metrics to draw, one panel each.
    baselines : sequence of str, default=()
        Rows drawn in grey (the constant prior, a TF-IDF model), apart from
        the LLM's rows.
    title : str, default=""
        Figure title (dataset and model, for instance).

    A panel whose positive values span more than a factor of 30 (NLL of hard
    predictions next to a calibrated row) gets a logarithmic axis. Rows with
    a ``<metric>_ci`` ``(low, high)`` pair (``alignment_report(...,
    n_bootstrap=...)``) get error bars.

    Examples
    --------
    >>> fig = plot_metric_bars({"max": {"nll": 2.0, "l1": 1.0, "example_f1": 0.5},
    ...                         "first": {"nll": 5.0, "l1": 1.5, "example_f1": 0.4}})
    >>> [ax.get_title() for ax in fig.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['NLL (lower is better)', 'L1 (lower is better)', 'example-F1 (higher is better)']
    """
    names = list(results)
    fig = _figure(4 * len(metrics), 4)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    colors = ["0.6" if name in baselines else "tab:blue" for name in names]
    for ax, metric in zip(axes, metrics):
        values = np.array([results[name].get(metric, np.nan) for name in names], dtype=float)
        intervals = [results[name].get(f"{metric}_ci") for name in names]
        yerr = None
        if any(ci is not None for ci in intervals):
            yerr = np.array([[v - ci[0], ci[1] - v] if ci is not None else [0.0, 0.0]
                             for v, ci in zip(values, intervals)]).T.clip(min=0)
        bars = ax.bar(range(len(names)), values, color=colors, yerr=yerr, capsize=3)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
        positive = values[np.isfinite(values) & (values > 0)]
        if len(positive) and positive.max() / positive.min() > 30:
            ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(_METRIC_TITLES.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_demonstration_sensitivity(traces: Sequence[dict], label_names: Sequence[str]):
    """How much each label's probability moves with the demonstration set.

    Reads the ``prompt_probabilities`` of :meth:`LLMMultiLabelClassifier.predict_steps`
    (``n_prompts > 1``): per label, the distribution over texts of the
    standard deviation of its probability across the prompts (a box per
    label), and the mean probability of each prompt (one line per prompt).

    Examples
    --------
    >>> traces = [{"prompt_probabilities": np.array([[0.2, 0.9], [0.4, 0.8]])},
    ...           {"prompt_probabilities": np.array([[0.1, 0.5], [0.1, 0.7]])}]
    >>> fig = plot_demonstration_sensitivity(traces, ["a", "b"])
    >>> [ax.get_title() for ax in fig.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['spread across demonstration sets, per text', 'mean probability per demonstration set']
    """
    names = list(label_names)
    found = [np.asarray(t["prompt_probabilities"], dtype=float) for t in traces
             if "prompt_probabilities" in t]
    if not found:
        raise ValueError("the traces have no prompt_probabilities: predict_steps gives them "
                         "for an estimator with n_prompts > 1.")
    per_text = np.stack(found)  # (n_texts, n_prompts, n_labels)
    spread = per_text.std(axis=1)
    fig = _figure(max(9, 1.2 * len(names) + 4), 4)
    left, right = fig.subplots(1, 2)
    left.boxplot([spread[:, j] for j in range(len(names))], showfliers=True)
    left.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    left.set(ylabel="standard deviation across prompts",
             title="spread across demonstration sets, per text")
    left.grid(axis="y", alpha=0.3)
    means = per_text.mean(axis=0)  # (n_prompts, n_labels)
    for k, row in enumerate(means):
        right.plot(range(len(names)), row, marker="o", label=f"prompt {k + 1}")
    right.set_xticks(range(len(names)), names, rotation=45, ha="right")
    right.set(ylabel="mean probability", ylim=(0, 1),
              title="mean probability per demonstration set")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    fig.suptitle(f"Demonstration sensitivity ({per_text.shape[1]} prompts, "
                 f"{per_text.shape[0]} texts)")
    return fig
