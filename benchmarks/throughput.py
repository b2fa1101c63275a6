"""Throughput of the step-scoring engine against the original method and the hardware floor.

Same machine, same run, same model, same 10-shot prompt, same texts (a seeded
sample of MFRC N = 3 test texts):

original
    What the paper's code did: per example, ``generate(output_scores=True,
    return_dict_in_generate=True)`` on the full prompt (instruction,
    demonstrations and text), batch size 1, greedy, reading the label-step
    distributions from the scores. Re-implemented here, not in the package.
ours
    ``LLMMultiLabelClassifier.predict_proba`` (aggregation ``max``) with a cold
    cache.
floor
    The tokens the method cannot avoid: one batched forward over each text's
    own tokens plus the label tokens it generates, against the already encoded
    shared prefix, with no decoding loop and no bookkeeping.
unary, binary
    The breakdown strategies with a cold cache.

The script checks that ours and original give the same step distributions
(max abs difference of the label scores at every generated position) and the
same generated labels on every text, then prints a markdown table with the
ratios. Peak memory is the process's peak resident set during each method
minus its resident set before it (Linux ``/proc``).

Run::

    .venv/bin/python benchmarks/throughput.py --n 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch
from _common import machine, measure
from transformers import GenerationConfig

from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache
from sklearn_llm_multilabel._prompts import parse_labels
from sklearn_llm_multilabel.backends._engine import inference
from sklearn_llm_multilabel.backends._labels import reduce_label_logits
from sklearn_llm_multilabel.datasets import load_mfrc, train_test_split_bunch

METHODS = ("original", "ours", "floor", "unary", "binary")


def run_original(scorer, query_ids):
    """Per-example ``generate`` on the full prompt; returns (generated ids, label scores) per text."""
    model, tok = scorer.model, scorer.tokenizer
    config = GenerationConfig(max_new_tokens=scorer.max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=scorer._pad_id, eos_token_id=tok.eos_token_id,
                              output_scores=True, return_dict_in_generate=True)
    results = []
    with torch.inference_mode():
        for ids in query_ids:
            prompt = torch.tensor([scorer.prefix_ids + ids], device=scorer.loaded.device)
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 generation_config=config)
            generated = out.sequences[0, prompt.shape[1]:].tolist()
            logits = torch.cat(out.scores, dim=0).float()  # (n_generated, vocab)
            results.append((generated, reduce_label_logits(logits, scorer._idx, scorer._valid).numpy()))
    return results


def run_floor(scorer, query_ids, records, batch_size):
    """One forward per batch over text + generated tokens after the encoded prefix."""
    use_shared = scorer._uses_shared_prefix(True)
    shared = scorer._shared_prefix() if use_shared else None
    for chunk in scorer.batches(query_ids, batch_size):
        rows = [query_ids[i] + records[i].generated_ids[:-1].tolist() for i in chunk]
        keep = max(len(records[i].generated_ids) for i in chunk)
        batch = scorer._layout(rows, use_shared)
        with inference(scorer.model):
            scorer._first_forward(batch, shared, hidden=False, keep=keep)


def compare(scorer, records, original):
    """Max abs label-score difference and the number of texts whose generated labels differ."""
    max_diff, label_mismatch, token_mismatch = 0.0, 0, 0
    for rec, (generated, scores) in zip(records, original):
        n = len(rec.generated_ids)
        if generated[:n] != rec.generated_ids.tolist():
            token_mismatch += 1
        m = min(n, len(scores))
        max_diff = max(max_diff, float(np.abs(scores[:m] - rec.position_scores[:m]).max()))
        text = scorer.tokenizer.decode(generated[: rec.n_valid], skip_special_tokens=True)
        cut = scorer._stop_offset(text)
        text = (text if cut is None else text[:cut]).strip()
        parsed, _ = parse_labels(text, scorer.label_names, scorer.label_format, scorer.none_label)
        label_mismatch += tuple(parsed) != rec.parsed
    return max_diff, label_mismatch, token_mismatch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=100, help="MFRC test texts")
    parser.add_argument("--n-shots", type=int, default=10)
    parser.add_argument("--batch-size", default="16", help="an int or 'auto'")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every method but original")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)

    train, test = train_test_split_bunch(load_mfrc(), train_size=2000, test_size=args.n,
                                         random_state=0)
    texts = list(test.data)
    clf = LLMMultiLabelClassifier(model=args.model, labels=train.label_names, n_shots=args.n_shots,
                                  batch_size=batch_size, device=args.device, dtype=args.dtype,
                                  random_state=0, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.data, train.target)
        for aggregation in ("max", "unary", "binary"):  # load the model, encode the prefixes
            clf.set_params(aggregation=aggregation).predict_proba(texts[:2])
    scorer = clf._scorer()
    query_ids = scorer.tokenizer(scorer.prepare_queries(texts), add_special_tokens=False)["input_ids"]
    print(f"{args.n} MFRC texts, {len(train.label_names)} labels, prefix {len(scorer.prefix_ids)} "
          f"tokens, text+query {np.mean([len(q) for q in query_ids]):.0f} tokens on average, "
          f"batch size {batch_size}\n{machine()}")

    times: dict[str, list[float]] = {m: [] for m in methods}
    memory: dict[str, float] = {}
    records = original = None
    for repeat in range(args.repeats):
        for method in methods:
            if method == "original" and repeat > 0:
                continue
            if method == "floor" and records is None:
                raise SystemExit("floor needs 'ours' before it in --methods")
            clear_memory_cache()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with measure() as m:
                    if method == "original":
                        original = run_original(scorer, query_ids)
                    elif method == "floor":
                        run_floor(scorer, query_ids, records, batch_size)
                    else:
                        aggregation = "max" if method == "ours" else method
                        clf.set_params(aggregation=aggregation).predict_proba(texts)
                if method == "ours":
                    records = clf._records(texts)
            times[method].append(m.seconds)
            memory[method] = max(memory.get(method, 0.0), m.peak_above_start_mib)
            print(f"  {method}: {m.seconds:.2f} s ({m.seconds / args.n:.3f} s/text), "
                  f"peak +{m.peak_above_start_mib:.0f} MiB", flush=True)

    median = {k: float(np.median(v)) for k, v in times.items() if v}
    results = {"n": args.n, "machine": machine(), "batch_size": str(batch_size),
               "seconds": times, "median_seconds": median, "peak_mib_above_start": memory}
    print("\n| method | texts/s | s/text | peak memory above start (MiB) | runs |")
    print("|---|---|---|---|---|")
    for k, v in median.items():
        print(f"| {k} | {args.n / v:.2f} | {v / args.n:.3f} | {memory[k]:.0f} | {len(times[k])} |")
    ratios = {}
    if "ours" in median:
        for name, (a, b) in {"original / ours": ("original", "ours"), "floor / ours": ("floor", "ours"),
                             "unary / max": ("unary", "ours"), "binary / max": ("binary", "ours")}.items():
            if a in median:
                ratios[name] = median[a] / median[b]
        print("\n| ratio (of times) | value | target |\n|---|---|---|")
        targets = {"original / ours": "≥ 10", "floor / ours": "≥ 0.8", "unary / max": "≤ 1.5",
                   "binary / max": "≤ 4"}
        for name, value in ratios.items():
            print(f"| {name} | {value:.2f} | {targets[name]} |")
    results["ratios"] = ratios
    if original is not None and records is not None:
        max_diff, label_mismatch, token_mismatch = compare(scorer, records, original)
        results["check"] = {"max_abs_score_diff": max_diff, "texts_with_other_labels": label_mismatch,
                            "texts_with_other_tokens": token_mismatch}
        print(f"\nours vs original: max abs label-score difference {max_diff:.2e}; texts with "
              f"different generated labels: {label_mismatch} of {args.n}; with different "
              f"generated tokens: {token_mismatch}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
