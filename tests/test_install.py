"""The README's install takes the CPU build of torch on any machine, before the package."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_takes_torch_from_the_cpu_index_first(tmp_path):
    lines = subprocess.run(["make", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commands = lines.replace("\\\n", " ").splitlines()
    torch = next(i for i, line in enumerate(commands) if '"torch==' in line)
    package = next(i for i, line in enumerate(commands) if "install -e" in line)
    assert torch < package
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in commands[torch]
    assert 'import torch" 2>/dev/null ||' in commands[torch]  # an installed torch is kept
