"""What the model wrote, summarised: labels outside the label set, one dominant label list.

Pure functions over the generations of one call, shared by the estimator's
warnings and the reports of ``sklml evaluate`` and ``sklml analyze``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

#: fewest distinct texts for which a dominant generation is worth a warning
IDENTICAL_MIN_TEXTS = 10
#: share of the generations above which one label list "dominates"
IDENTICAL_SHARE = 0.5
#: unknown names listed in a message
TOP_UNKNOWN = 5


def unknown_label_summary(unknown: Sequence[Sequence[str]], *, top: int = TOP_UNKNOWN) -> dict:
    """Texts whose generation holds names outside the label set, and the most frequent names.

    Parameters
    ----------
    unknown : sequence of sequence of str
        Per text, the names the model wrote that are neither a label nor the
        empty-set word (``predict_steps()[i]["unknown_labels"]``).
    top : int, default=5
        How many of the most frequent names to keep.

    Returns
    -------
    summary : dict
        ``n_texts``, ``n_affected`` (texts with at least one unknown name),
        ``share`` and ``most_frequent`` (``[name, count]`` pairs, most
        frequent first, ties in order of appearance).

    Examples
    --------
    >>> unknown_label_summary([["negative"], [], ["negative", "fun"], []])
    {'n_texts': 4, 'n_affected': 2, 'share': 0.5, 'most_frequent': [['negative', 2], ['fun', 1]]}
    """
    counts = Counter(name for names in unknown for name in names)
    n_affected = sum(1 for names in unknown if len(names))
    return {"n_texts": len(unknown), "n_affected": n_affected,
            "share": n_affected / len(unknown) if len(unknown) else 0.0,
            "most_frequent": [[name, n] for name, n in counts.most_common(top)]}


def unknown_label_message(summary: dict) -> str | None:
    """One line describing :func:`unknown_label_summary` (None when no text is affected).

    Examples
    --------
    >>> print(unknown_label_message(unknown_label_summary([["negative"], []])))
    the model wrote names outside the label set for 1 of 2 texts (50.0%), most often: 'negative' (1); \
they are not scored as labels.
    """
    if not summary["n_affected"]:
        return None
    names = ", ".join(f"{name!r} ({n})" for name, n in summary["most_frequent"])
    return (f"the model wrote names outside the label set for {summary['n_affected']} of "
            f"{summary['n_texts']} texts ({100 * summary['share']:.1f}%), most often: {names}; "
            "they are not scored as labels.")


def dominant_generation(texts: Sequence[str], generations: Sequence[str]) -> dict | None:
    """The most frequent generated label list, when it is written for most of the texts.

    Returns None below ``IDENTICAL_MIN_TEXTS`` distinct texts, or when no
    generation is written for more than ``IDENTICAL_SHARE`` of them.

    Returns
    -------
    found : dict or None
        ``generation``, ``count``, ``n_texts`` and ``share``.

    Examples
    --------
    >>> texts = [f"text {i}" for i in range(10)]
    >>> dominant_generation(texts, [" care"] * 7 + [" purity"] * 3)
    {'generation': ' care', 'count': 7, 'n_texts': 10, 'share': 0.7}
    >>> dominant_generation(texts, [" care"] * 5 + [" purity"] * 5) is None
    True
    """
    if len(set(texts)) < IDENTICAL_MIN_TEXTS or not generations:
        return None
    generation, count = Counter(generations).most_common(1)[0]
    share = count / len(generations)
    if share <= IDENTICAL_SHARE:
        return None
    return {"generation": generation, "count": count, "n_texts": len(generations), "share": share}
