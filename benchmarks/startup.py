"""Start-up of a new process, side by side in one run: importing torch and transformers, against
loading the embedded model and scoring one text.

Each measurement is a fresh interpreter, alternating between the two, after one untimed run
that converts the GGUF file (the first process's cost, reported apart). The text is scored
with a prompt of the illustrative dataset and no step cache, so the model really runs.

Run::

    .venv/bin/python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMPORT = "import torch, transformers"
SCORE = """
import warnings
warnings.simplefilter("ignore")
from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.datasets import load_illustrative_topics
ds = load_illustrative_topics()
clf = LLMMultiLabelClassifier(labels=ds.label_names, n_shots=4, show_progress=False)
clf.fit(ds.data, ds.target).predict_proba(["a new text about the weather and a game"])
"""


def timed(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SKLML_MODEL_CACHE": os.path.join(tmp, "converted"),
               "SKLML_CACHE_DIR": os.path.join(tmp, "steps")}
        first = timed(SCORE, env)  # reads the GGUF file and writes its conversion
        times = {"import": [], "score": []}
        for i in range(args.repeats):
            order = [("import", IMPORT), ("score", SCORE)]
            for name, code in order if i % 2 == 0 else order[::-1]:
                times[name].append(timed(code, env))
    imp, score = statistics.median(times["import"]), statistics.median(times["score"])
    print(f"New processes, median of {args.repeats} each, alternating:\n")
    print("| process | wall time (s) | runs (s) |")
    print("|---|---|---|")
    print(f"| import torch and transformers | {imp:.1f} | "
          f"{', '.join(f'{t:.1f}' for t in times['import'])} |")
    print(f"| load the embedded model, fit, score one text | {score:.1f} | "
          f"{', '.join(f'{t:.1f}' for t in times['score'])} |")
    print(f"\nscore ÷ import: {score / imp:.2f}; the first process (GGUF read and converted): "
          f"{first:.1f} s")


if __name__ == "__main__":
    main()
