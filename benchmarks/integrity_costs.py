"""What the integrity checks cost, side by side in one run: a long text cut to its token budget
(tokenised only as far as the cut needs, against tokenising it whole), and the content digests
that identify model files (the GGUF file, the converted weights).

Each text measurement is a fresh interpreter (peak memory is the process's), with the embedded
model's tokenizer; ratios are what to read on a noisy machine.

Run::

    .venv/bin/python benchmarks/integrity_costs.py
"""

from __future__ import annotations

import json
import subprocess
import sys

CUT = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from sklearn_llm_multilabel.backends._load import load_model
from sklearn_llm_multilabel.backends import _text
tok = load_model(lazy=True).tokenizer
text = "word " * (int(sys.argv[1]) // 5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if sys.argv[2] == "whole":
    ids = _text.encode_texts(tok, [text])[0]
    cut = tok.decode(ids[:256])
else:
    cut = _text.truncate_texts(tok, [text], 256)[0]
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "peak_mib": grown / 1024, "cut": cut}))
"""

DIGEST = """
import json, time
from pathlib import Path
from sklearn_llm_multilabel._keys import file_digest
from sklearn_llm_multilabel.backends._specs import MODEL_ALIASES, package_folder
from sklearn_llm_multilabel.backends._convert import cache_contents
package, filename, install = MODEL_ALIASES["smollm2-135m-instruct"]
files = [package_folder("smollm2-135m-instruct", package, install) / filename]
files += [f / "model.safetensors" for f in cache_contents()[1]][:1]
out = {}
for path in files:
    start = time.perf_counter()
    file_digest(path)
    first = time.perf_counter() - start
    start = time.perf_counter()
    file_digest(path)
    out[path.name] = {"mib": path.stat().st_size / 2**20, "first_s": first,
                      "again_s": time.perf_counter() - start}
print(json.dumps(out))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    print("| text | whole: s | whole: peak MiB | cut first: s | cut first: peak MiB | same cut |")
    print("|---|---|---|---|---|---|")
    for size in (1_000, 100_000, 8_000_000):
        whole, head = run(CUT, str(size), "whole"), run(CUT, str(size), "head")
        print(f"| {size:,} B | {whole['seconds']:.3f} | {whole['peak_mib']:.0f} | "
              f"{head['seconds']:.3f} | {head['peak_mib']:.0f} | {whole['cut'] == head['cut']} |")
    print("\n| file | MiB | digest, first (s) | digest, again in the process (s) |")
    print("|---|---|---|---|")
    for name, row in run(DIGEST).items():
        print(f"| {name} | {row['mib']:.0f} | {row['first_s']:.3f} | {row['again_s']:.4f} |")


if __name__ == "__main__":
    main()
