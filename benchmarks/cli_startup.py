"""Start-up time of ``sklml --help`` and of an input error, against another source tree.

Each command runs in a fresh interpreter, alternating between this tree and
``--reference`` (for instance a ``git worktree`` of an earlier commit), and the
median wall time of each is reported with the ratio, in one run: warm (files
in the page cache) and cold (the page cache dropped before every start, which
needs root on Linux).

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


def drop_page_cache() -> None:
    """Linux, as root: forget cached file pages, so the next start reads from disk (cold)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def run(tree: Path, args: list[str], cold: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if cold:
        drop_page_cache()
    start = time.perf_counter()
    # run from the tree itself: `python -m` puts the working directory first on sys.path
    subprocess.run([sys.executable, "-m", "sklearn_llm_multilabel.cli", *args], env=env,
                   cwd=tree, capture_output=True, check=False)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="the other source tree")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| command | start | reference (s) | this tree (s) | reference ÷ this |")
    print("|---|---|---|---|---|")
    for cold in (False, True):
        for name, command in COMMANDS.items():
            times = {"reference": [], "this": []}
            for _ in range(args.repeats):
                times["reference"].append(run(args.reference, command, cold))
                times["this"].append(run(HERE, command, cold))
            ref, this = statistics.median(times["reference"]), statistics.median(times["this"])
            start = "cold (page cache dropped)" if cold else "warm"
            print(f"| `{name}` | {start} | {ref:.2f} | {this:.2f} | {ref / this:.1f} |", flush=True)


if __name__ == "__main__":
    main()
