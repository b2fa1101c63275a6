"""What choosing demonstrations per text costs, next to what scoring the text costs.

Side by side in one run, per text:

- the exact neighbour search of ``demo_selection="knn"``
  (``_retrieval.nearest_demonstrations``) against pools of 10 thousand to a
  million candidates (random unit vectors of the encoder's width, 384), and
  the full sort it replaced, with the peak memory of each;
- an approximate (HNSW) index from ``faiss``, when it is installed (not a
  dependency of the library): its build time, search time and recall@k of
  the exact neighbours;
- embedding one text with the embedded MiniLM encoder;
- scoring one text's retrieved prompt with the embedded language model
  (MFRC, 10 shots), when the shared data folder is there.

Run::

    .venv/bin/python benchmarks/retrieval.py --pools 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine, measure

from sklearn_llm_multilabel._retrieval import nearest_demonstrations

WIDTH = 384


def unit(rng, n: int) -> np.ndarray:
    x = rng.standard_normal((n, WIDTH), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def full_sort(queries, pool, k):
    """The search before: every similarity of every query at once, fully sorted."""
    sims = queries @ pool.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k][:, ::-1]


def faiss_row(queries, pool, k, exact):
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexHNSWFlat(WIDTH, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    start = time.perf_counter()
    index.add(pool)
    build = time.perf_counter() - start
    start = time.perf_counter()
    _, found = index.search(queries, k)
    search = time.perf_counter() - start
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])
    return build, search / len(queries), recall


def embedding_cost(n: int) -> float:
    from sklearn_llm_multilabel._encoder import DEFAULT_ENCODER
    from sklearn_llm_multilabel.backends._embed import embed_texts

    texts = [f"text number {i} about the weather, a match and an election" for i in range(n)]
    embed_texts(DEFAULT_ENCODER, ["warm-up"])
    start = time.perf_counter()
    embed_texts(DEFAULT_ENCODER, texts)
    return (time.perf_counter() - start) / n


def llm_cost(n: int) -> float | None:
    import warnings

    from sklearn_llm_multilabel import LLMMultiLabelClassifier
    from sklearn_llm_multilabel.datasets import load_mfrc

    try:
        ds = load_mfrc()
    except (FileNotFoundError, OSError):
        return None
    texts, target = list(ds.data), (np.asarray(ds.target) >= 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LLMMultiLabelClassifier(labels=list(ds.label_names), n_shots=10,
                                      demo_selection="knn", cache_dir=None,
                                      show_progress=False).fit(texts[:150], target[:150])
        clf.predict_proba(texts[150:152])  # weights read, queries embedded once
        start = time.perf_counter()
        clf.predict_proba(texts[160:160 + n])
    return (time.perf_counter() - start) / n


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--texts", type=int, default=8,
                        help="texts embedded and scored for the per-text costs")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    queries = unit(rng, args.queries)
    print(machine(), "\n")
    print(f"{args.queries} queries, k = {args.k}, width {WIDTH}\n")
    print("| pool | exact search (ms/query) | peak MiB | full sort (ms/query) | peak MiB | "
          "same neighbours | HNSW build (s) | HNSW search (ms/query) | HNSW recall@k |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (int(p) for p in args.pools.split(",")):
        pool = unit(rng, n)
        with measure() as ours:
            got = nearest_demonstrations(queries, pool, args.k)
        with measure() as before:
            ref = full_sort(queries, pool, args.k)
        ann = faiss_row(queries, pool, args.k, got[:, ::-1])
        ann_cells = ("– | – | –" if ann is None
                     else f"{ann[0]:.1f} | {ann[1] * 1e3:.2f} | {ann[2]:.3f}")
        print(f"| {n:,} | {ours.seconds / args.queries * 1e3:.2f} | "
              f"{ours.peak_above_start_mib:.0f} | {before.seconds / args.queries * 1e3:.2f} | "
              f"{before.peak_above_start_mib:.0f} | {np.array_equal(got, ref)} | {ann_cells} |")
        del pool
    embed = embedding_cost(args.texts)
    llm = llm_cost(args.texts)
    print("\n| per text | ms |\n|---|---|")
    print(f"| embed the text (MiniLM, embedded) | {embed * 1e3:.1f} |")
    if llm is not None:
        print(f"| score its retrieved prompt (embedded LLM, MFRC, 10 shots) | {llm * 1e3:.0f} |")


if __name__ == "__main__":
    main()
