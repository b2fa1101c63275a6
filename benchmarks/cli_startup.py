"""Start-up time of ``sklml --help`` and of an input error, against another source tree.

Each command runs in a fresh interpreter, alternating between this tree and
``--reference`` (for instance a ``git worktree`` of an earlier commit), and the
median wall time of each is reported with the ratio, in one run.

Run::

    git worktree add /tmp/sklml-before <commit>
    .venv/bin/python benchmarks/cli_startup.py --reference /tmp/sklml-before
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "sklml --help": ["--help"],
    "sklml evaluate missing.csv (input error)": ["evaluate", "missing.csv", "--format", "csv"],
}
HERE = Path(__file__).resolve().parents[1]


def run(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sklearn_llm_multilabel.cli", *args], env=env,
                   capture_output=True, check=False)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="the other source tree")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| command | reference (s) | this tree (s) | reference ÷ this |")
    print("|---|---|---|---|")
    for name, command in COMMANDS.items():
        times = {"reference": [], "this": []}
        for _ in range(args.repeats):
            times["reference"].append(run(args.reference, command))
            times["this"].append(run(HERE, command))
        ref, this = statistics.median(times["reference"]), statistics.median(times["this"])
        print(f"| `{name}` | {ref:.2f} | {this:.2f} | {ref / this:.1f} |", flush=True)


if __name__ == "__main__":
    main()
