"""Statistics of label-generation step distributions (the paper's analysis section).

Pure numpy over the traces returned by
:meth:`LLMMultiLabelClassifier.predict_steps`: each trace holds the step
distributions ``P_r`` over labels + none at every label-generation step ``r``
and the labels generated at those steps.

* :func:`step_table`: one row per step: step index, whether it is the last
  step, top and second-highest probability, entropy in bits, the top- and
  second-ranked labels, the label chosen next and whether the second-ranked
  label is chosen next or at any later step.
* :func:`summarize_steps`: means per step index for intermediate and last
  steps, the share of intermediate steps whose second-ranked label is chosen
  next ("same %"), the share of second-ranked labels not chosen next that are
  never chosen later (Table 4), and how the first step's distribution relates
  to the final output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.utils import Bunch

_COLUMNS = ("text", "step", "n_steps", "is_last", "top", "second", "entropy_bits", "top_label",
            "second_label", "chosen_label", "next_label", "second_is_next", "second_later")


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=-1)


def step_table(traces: Sequence[dict], label_names: Sequence[str]) -> Bunch:
    """One row per label-generation step of every trace that has steps.

    Parameters
    ----------
    traces : sequence of dict
        From :meth:`LLMMultiLabelClassifier.predict_steps`.
    label_names : sequence of str
        Column names of the step distributions (labels, then the none word).

    Returns
    -------
    table : Bunch of 1-d arrays
        ``text`` (trace index), ``step`` (0-based index r), ``n_steps``,
        ``is_last``, ``top``, ``second``, ``entropy_bits``, ``top_label``,
        ``second_label``, ``chosen_label`` (label generated at r),
        ``next_label`` (at r + 1; -1 for the last step), ``second_is_next``
        and ``second_later`` (the second-ranked label is generated at r + 1,
        or at any step after r).

    Examples
    --------
    >>> trace = {"has_steps": True, "step_labels": ["a", "b"],
    ...          "step_distributions": np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])}
    >>> t = step_table([trace], ["a", "b", "none"])
    >>> t.top.tolist(), t.second_is_next.tolist(), t.is_last.tolist()
    ([0.7, 0.8], [True, False], [False, True])
    """
    names = list(label_names)
    index = {name: k for k, name in enumerate(names)}
    rows: dict[str, list] = {c: [] for c in _COLUMNS}
    for i, trace in enumerate(traces):
        if not trace.get("has_steps", True):
            continue
        dist = np.asarray(trace["step_distributions"], dtype=float)
        if dist.ndim != 2 or dist.shape[1] != len(names):
            raise ValueError(f"trace {i}: step distributions of shape {dist.shape}; expected "
                             f"(n_steps, {len(names)}).")
        try:
            chosen = [index[name] for name in trace["step_labels"]]
        except KeyError as exc:
            raise ValueError(f"trace {i}: step label {exc.args[0]!r} is not in label_names.") from None
        if len(chosen) != len(dist):
            raise ValueError(f"trace {i}: {len(chosen)} step labels for {len(dist)} distributions.")
        ranked = np.argsort(-dist, axis=1, kind="stable")
        entropy = _entropy_bits(dist)
        for r in range(len(dist)):
            second = int(ranked[r, 1]) if dist.shape[1] > 1 else -1
            rows["text"].append(i)
            rows["step"].append(r)
            rows["n_steps"].append(len(dist))
            rows["is_last"].append(r == len(dist) - 1)
            rows["top"].append(dist[r, ranked[r, 0]])
            rows["second"].append(dist[r, second] if second >= 0 else 0.0)
            rows["entropy_bits"].append(entropy[r])
            rows["top_label"].append(int(ranked[r, 0]))
            rows["second_label"].append(second)
            rows["chosen_label"].append(chosen[r])
            rows["next_label"].append(chosen[r + 1] if r + 1 < len(chosen) else -1)
            rows["second_is_next"].append(r + 1 < len(chosen) and chosen[r + 1] == second)
            rows["second_later"].append(second in chosen[r + 1 :])
    dtypes = {"top": float, "second": float, "entropy_bits": float, "is_last": bool,
              "second_is_next": bool, "second_later": bool}
    return Bunch(**{c: np.asarray(v, dtype=dtypes.get(c, int)) for c, v in rows.items()})


def summarize_steps(traces: Sequence[dict], label_names: Sequence[str]) -> dict:
    """The step analysis of the paper (means, "same %", Table 4, first step vs output).

    Returns
    -------
    summary : dict
        ``n_texts``, ``n_texts_with_steps``, ``n_steps``; ``by_step``: for
        ``"intermediate"`` and ``"last"``, a list of ``{"step", "count",
        "top", "second", "entropy_bits"}`` means per step index;
        ``overall``: the same means over all intermediate / last steps;
        ``second_is_next_share``: intermediate steps whose second-ranked label
        is generated next; ``second_never_later_share``: of the intermediate
        steps whose second-ranked label is not generated next, the share where
        it is never generated later; ``first_step``: for texts with two or
        more generated labels, the mean first-step probability of the labels
        generated after the first step, and the share of those labels whose
        first-step probability is below 0.05.

    Examples
    --------
    >>> trace = {"has_steps": True, "step_labels": ["a", "b"],
    ...          "step_distributions": np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])}
    >>> s = summarize_steps([trace], ["a", "b", "none"])
    >>> s["second_is_next_share"], s["first_step"]["later_labels_mean_prob"]
    (1.0, 0.2)
    """
    table = step_table(traces, label_names)
    summary: dict = {"n_texts": len(traces),
                     "n_texts_with_steps": int(len(np.unique(table.text))),
                     "n_steps": int(len(table.step)), "by_step": {}, "overall": {}}
    for part, mask in (("intermediate", ~table.is_last), ("last", table.is_last)):
        rows = []
        for r in np.unique(table.step[mask]):
            sel = mask & (table.step == r)
            rows.append({"step": int(r), "count": int(sel.sum()),
                         **{k: float(table[k][sel].mean()) for k in ("top", "second", "entropy_bits")}})
        summary["by_step"][part] = rows
        summary["overall"][part] = {
            "count": int(mask.sum()),
            **{k: float(table[k][mask].mean()) if mask.any() else float("nan")
               for k in ("top", "second", "entropy_bits")},
        }
    inter = ~table.is_last
    summary["second_is_next_share"] = (float(table.second_is_next[inter].mean())
                                       if inter.any() else float("nan"))
    not_next = inter & ~table.second_is_next
    summary["second_never_later_share"] = (float((~table.second_later[not_next]).mean())
                                           if not_next.any() else float("nan"))
    index = {name: k for k, name in enumerate(label_names)}
    later, n_multi = [], 0
    for trace in traces:
        if trace.get("has_steps", True) and len(trace["step_labels"]) >= 2:
            n_multi += 1
            first = np.asarray(trace["step_distributions"], dtype=float)[0]
            later.extend(first[index[name]] for name in trace["step_labels"][1:])
    later = np.asarray(later, dtype=float)
    summary["first_step"] = {
        "texts_with_two_or_more_steps": n_multi,
        "later_labels_mean_prob": float(later.mean()) if len(later) else float("nan"),
        "later_labels_below_0.05_share": float((later < 0.05).mean()) if len(later) else float("nan"),
    }
    return summary


def summary_markdown(summary: dict) -> str:
    """A markdown report of :func:`summarize_steps`.

    Examples
    --------
    >>> trace = {"has_steps": True, "step_labels": ["a", "b"],
    ...          "step_distributions": np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])}
    >>> print(summary_markdown(summarize_steps([trace], ["a", "b", "none"])).splitlines()[2])
    1 texts, 1 with at least one label step, 2 steps in total.
    """
    lines = ["# Label-generation step distributions", "",
             f"{summary['n_texts']} texts, {summary['n_texts_with_steps']} with at least one "
             f"label step, {summary['n_steps']} steps in total.", "",
             "| steps | count | mean top probability | mean second probability | mean entropy (bits) |",
             "|---|---|---|---|---|"]
    for part in ("intermediate", "last"):
        o = summary["overall"][part]
        lines.append(f"| {part} | {o['count']} | {o['top']:.3f} | {o['second']:.3f} | "
                     f"{o['entropy_bits']:.3f} |")
    lines += ["", "Per step index:", "", "| steps | step | count | top | second | entropy (bits) |",
              "|---|---|---|---|---|---|"]
    for part in ("intermediate", "last"):
        for row in summary["by_step"][part]:
            lines.append(f"| {part} | {row['step'] + 1} | {row['count']} | {row['top']:.3f} | "
                         f"{row['second']:.3f} | {row['entropy_bits']:.3f} |")
    first = summary["first_step"]
    lines += [
        "",
        f"- Intermediate steps whose second-ranked label is generated next: "
        f"{summary['second_is_next_share']:.1%}.",
        f"- Second-ranked labels not generated next that are never generated later "
        f"(Table 4): {summary['second_never_later_share']:.1%}.",
        f"- First step versus final output: over {first['texts_with_two_or_more_steps']} texts "
        f"with two or more generated labels, the labels generated after the first step had a "
        f"mean first-step probability of {first['later_labels_mean_prob']:.3f}; "
        f"{first['later_labels_below_0.05_share']:.1%} of them had less than 0.05.",
        "",
    ]
    return "\n".join(lines)
