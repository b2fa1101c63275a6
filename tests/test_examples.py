"""Every example runs (on the tiny model, so in seconds)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_grid_search_example_runs_the_model_once_per_text(tiny_llama, capsys):
    grid = load("grid_search_aggregation").main(["--model", tiny_llama, "--n-shots", "2"])
    out = capsys.readouterr().out
    assert "12 candidates x 3 folds; texts decoded by the model: 40 (dataset size 40)" in out
    assert grid.best_params_["aggregation"] in {"first", "max", "mean", "hard"}
