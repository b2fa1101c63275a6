"""The library's departures from the paper's released code, one at a time, on MFRC.

Fits ``protocol="official"`` with the paper's MFRC prompt (``PAPER_PROMPTS["mfrc"]``)
and 10 demonstrations, then scores the same test texts with the same
demonstrations under each of the library's choices on its own, and under the
library protocol as a whole. For each: how many texts keep the official step
sequence, how far ``first``, ``max`` and ``hard`` move, how many text x label
cells of ``max`` cross 0.5, and NLL / L1 / example-F1 against the annotator
proportions. The unary and binary breakdowns are compared the same way.

Run (about 10 minutes on a 2-core CPU)::

    .venv/bin/python benchmarks/fidelity.py --out docs/results/fidelity.md
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from _common import machine

from sklearn_llm_multilabel import PAPER_PROMPTS, LLMMultiLabelClassifier
from sklearn_llm_multilabel._aggregation import (
    EPS,
    aggregate_first,
    aggregate_hard,
    aggregate_max,
    pack_steps,
)
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch
from sklearn_llm_multilabel.metrics import distribution_l1, distribution_nll, example_f1
from sklearn_llm_multilabel.scoring import fill as score_texts
from sklearn_llm_multilabel.store._files import StepCache

#: (row, what changes from the official protocol, scorer options, no-step fallback, add_bos)
DEPARTURES = [
    ("official (released code)", "-", {}, "uniform", None),
    ("label tokens", "word-initial variants + in-context tokens instead of one in-context token",
     {"label_variants": "word"}, "uniform", None),
    ("stopping", "stop at the first newline (or `Input:`) instead of only at `Input:`",
     {"stop_at_newline": True}, "uniform", None),
    ("step finding", "steps read from the generated ids instead of the re-tokenised output",
     {"retokenized_steps": False}, "uniform", None),
    ("no-step fallback", "first generated position instead of uniform",
     {}, "first", None),
    ("hard parsing", "lenient parsing (quotes stripped, JSON read) instead of a plain comma split",
     {"official_parse": False}, "uniform", None),
    ("BOS always added (earlier library versions)", "a BOS token the tokenizer does not add",
     {}, "uniform", True),
    ("library protocol", "all of the above but the BOS",
     {"protocol": "library"}, "first", None),
]


def aggregate(records, fallback: str, n_labels: int, label_names) -> dict[str, np.ndarray]:
    scores, mask = pack_steps([r.step_scores for r in records])
    p_max = aggregate_max(scores, mask)
    missing = np.array([not r.has_steps for r in records])
    if fallback == "uniform":
        p_max[missing] = 1.0 / n_labels
    parsed = np.array([[name in r.parsed for name in label_names] for r in records])
    return {"first": aggregate_first(scores, mask), "max": p_max, "hard": aggregate_hard(parsed),
            "no_step": int(missing.sum())}


def metrics(H: np.ndarray, P: np.ndarray) -> dict[str, float]:
    P = np.clip(P, EPS, 1 - EPS)
    return {"nll": distribution_nll(H, P), "l1": distribution_l1(H, P), "f1": example_f1(H, P)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-breakdowns", dest="breakdowns", action="store_false")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    train, test = train_test_split_bunch(load_mfrc(), train_size=2000, test_size=args.n_test,
                                         random_state=args.seed)
    labels = list(train.label_names)
    common = dict(model=args.model, labels=labels, n_shots=args.n_shots, random_state=args.seed,
                  show_progress=False, **PAPER_PROMPTS["mfrc"])
    warnings.simplefilter("ignore")
    official = LLMMultiLabelClassifier(protocol="official", **common).fit(train.data, train.target)
    library = LLMMultiLabelClassifier(protocol="library", **common).fit(train.data, train.target)
    for attr in ("demonstrations_", "demonstration_indices_", "breakdown_demonstrations_"):
        setattr(library, attr, getattr(official, attr))  # same demonstrations for every row
    texts = official._texts(test.data)
    H = test.target

    rows, reference = [], None
    for name, change, options, fallback, add_bos in DEPARTURES:
        options = dict(options)
        est = library if options.pop("protocol", "official") == "library" else official
        if add_bos is not None:
            est.set_params(add_bos=add_bos)
        records = score_texts(est._scorer(**options), StepCache(None), texts, batch_size="auto")
        est.set_params(add_bos=None)
        probas = aggregate(records, fallback, len(labels), labels)
        steps = [tuple(r.step_labels.tolist()) for r in records]
        if reference is None:
            reference = {"steps": steps, **probas}
        rows.append({
            "row": name, "change": change,
            "same_steps": sum(a == b for a, b in zip(steps, reference["steps"])),
            "first_diff": float(np.abs(probas["first"] - reference["first"]).max()),
            "max_diff": float(np.abs(probas["max"] - reference["max"]).max()),
            "max_flips": int(((probas["max"] >= 0.5) != (reference["max"] >= 0.5)).sum()),
            "hard_diff": int((probas["hard"] != reference["hard"]).sum()),
            "no_step": probas["no_step"],
            "max_metrics": metrics(H, probas["max"]), "first_metrics": metrics(H, probas["first"]),
            "hard_metrics": metrics(H, probas["hard"]),
        })
        print(f"{name}: {rows[-1]['same_steps']}/{len(texts)} same steps, "
              f"max diff {rows[-1]['max_diff']:.3f}", flush=True)

    breakdowns = []
    if args.breakdowns:
        for kind in ("unary", "binary"):
            got = {}
            for est in (official, library):
                est.set_params(aggregation=kind)
                got[est.protocol] = est.predict_proba(test.data)
            if kind == "unary":
                scorer = official._breakdown_scorer("unary")
                records = score_texts(scorer, StepCache(None), texts, batch_size="auto")
                unanswered = sum(int((r.answer_scores == 0).all(axis=1).sum()) for r in records)
                n_queries = len(records) * len(scorer.suffix_ids)
            breakdowns.append({
                "kind": kind, "max_diff": float(np.abs(got["official"] - got["library"]).max()),
                "official": metrics(H, got["official"]), "library": metrics(H, got["library"]),
                "unanswered": f"{unanswered} of {n_queries}" if kind == "unary" else None,
            })
    result = {"model": args.model, "n_test": len(texts), "n_shots": args.n_shots,
              "seed": args.seed, "labels": labels, "rows": rows, "breakdowns": breakdowns,
              "machine": machine(), "seconds": time.perf_counter() - started}
    print(json.dumps(result, indent=1))
    if args.out:
        out = Path(args.out)
        out.write_text(to_markdown(result), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {out}")


def to_markdown(res: dict) -> str:
    n = res["n_test"]
    cells = n * len(res["labels"])
    lines = [
        "# Fidelity: the library's choices against the paper's released code", "",
        "Command: `python benchmarks/fidelity.py --out docs/results/fidelity.md`", "",
        f"Model `{res['model']}`, MFRC ({n} test texts, {res['n_shots']} demonstrations drawn "
        f"by the released code's sampler with seed {res['seed']}, the same for every row), the "
        "paper's MFRC prompt (`PAPER_PROMPTS['mfrc']`). Each row changes one choice of the "
        "official protocol to the library's; the last row is the library protocol as a whole. "
        f"Differences are against the official row. {res['machine']}; "
        f"{res['seconds'] / 60:.1f} min.", "",
        "| row | change | same steps | max abs Δ first | max abs Δ max | max cells crossing 0.5 "
        "| hard cells changed | texts without a step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['row']} | {r['change']} | {r['same_steps']} of {n} | {r['first_diff']:.3f} | "
            f"{r['max_diff']:.3f} | {r['max_flips']} of {cells} | {r['hard_diff']} of {cells} | "
            f"{r['no_step']} |")
    lines += ["", "Against the annotator proportions (↓ lower is better, ↑ higher is better):", "",
              "| row | max NLL ↓ | max L1 ↓ | max F1 ↑ | first NLL ↓ | first L1 ↓ | hard NLL ↓ "
              "| hard L1 ↓ | hard F1 ↑ |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        m, f, h = r["max_metrics"], r["first_metrics"], r["hard_metrics"]
        lines.append(f"| {r['row']} | {m['nll']:.3f} | {m['l1']:.3f} | {m['f1']:.3f} | "
                     f"{f['nll']:.3f} | {f['l1']:.3f} | {h['nll']:.3f} | {h['l1']:.3f} | "
                     f"{h['f1']:.3f} |")
    if res["breakdowns"]:
        lines += ["", "Breakdowns, official prompts and answer reading against the library's:", "",
                  "| breakdown | max abs Δ | official NLL ↓ | official L1 ↓ | official F1 ↑ "
                  "| library NLL ↓ | library L1 ↓ | library F1 ↑ |",
                  "|---|---|---|---|---|---|---|---|"]
        for b in res["breakdowns"]:
            o, lib = b["official"], b["library"]
            lines.append(f"| {b['kind']} | {b['max_diff']:.3f} | {o['nll']:.3f} | {o['l1']:.3f} | "
                         f"{o['f1']:.3f} | {lib['nll']:.3f} | {lib['l1']:.3f} | {lib['f1']:.3f} |")
        unary = next(b for b in res["breakdowns"] if b["kind"] == "unary")
        lines += ["", f"Unary queries whose official generation never wrote an answer token "
                      f"(probability 0.5): {unary['unanswered']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
