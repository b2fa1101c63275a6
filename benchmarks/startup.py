"""Start-up of a new process, side by side in one run: importing torch and transformers, against
loading the embedded model and scoring one text.

Each measurement is a fresh interpreter, in rotating order, after one untimed run that
converts the GGUF file (the first process's cost, reported apart). The text is scored with a
prompt of the illustrative dataset and no step cache, so the model really runs. A third
process does the same work with transformers alone (``from_pretrained`` of the converted
folder, the same prompt, three greedy tokens): the part of the start-up that is transformers'
own, which no library built on it can avoid.

Run::

    .venv/bin/python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMPORT = "import torch, transformers"
PROMPT = """
import json, warnings
warnings.simplefilter("ignore")
from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.backends._convert import cache_contents
from sklearn_llm_multilabel.datasets import load_illustrative_topics
ds = load_illustrative_topics()
clf = LLMMultiLabelClassifier(labels=ds.label_names, n_shots=4, show_progress=False)
parts = clf.fit(ds.data, ds.target)._prompt_parts()
text = parts.prefix + parts.query_head + "a new text about the weather and a game" + parts.query_tail
folder = cache_contents()[1][0]  # the one conversion of this run's cache
print(json.dumps({"prompt": text, "folder": str(folder)}))
"""
ALONE = """
import os, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompt = os.environ["STARTUP_FOLDER"], os.environ["STARTUP_PROMPT"]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
with torch.inference_mode():
    model.generate(**ids, max_new_tokens=3, do_sample=False)
"""
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
        shown = subprocess.run([sys.executable, "-c", PROMPT], env=env, check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
        shown = json.loads(shown)
        env = {**env, "STARTUP_FOLDER": shown["folder"], "STARTUP_PROMPT": shown["prompt"]}
        times = {"import": [], "alone": [], "score": []}
        order = [("import", IMPORT), ("alone", ALONE), ("score", SCORE)]
        for i in range(args.repeats):
            for name, code in order[i % 3:] + order[:i % 3]:
                times[name].append(timed(code, env))
    imp, alone, score = (statistics.median(times[k]) for k in ("import", "alone", "score"))
    print(f"New processes, median of {args.repeats} each, alternating:\n")
    print("| process | wall time (s) | runs (s) |")
    print("|---|---|---|")
    print(f"| import torch and transformers | {imp:.1f} | "
          f"{', '.join(f'{t:.1f}' for t in times['import'])} |")
    print(f"| transformers alone: load the converted folder, 3 tokens of the same prompt | "
          f"{alone:.1f} | {', '.join(f'{t:.1f}' for t in times['alone'])} |")
    print(f"| load the embedded model, fit, score one text | {score:.1f} | "
          f"{', '.join(f'{t:.1f}' for t in times['score'])} |")
    print(f"\nscore ÷ import: {score / imp:.2f}; score ÷ transformers alone: {score / alone:.2f}; "
          f"the first process (GGUF read and converted): {first:.1f} s")


if __name__ == "__main__":
    main()
