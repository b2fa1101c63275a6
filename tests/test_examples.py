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


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_alignment_table_on_a_small_slice(tiny_llama, tmp_path):
    from sklearn_llm_multilabel.datasets import get_data_home

    try:
        get_data_home()
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")
    out = tmp_path / "alignment.md"
    results = load("alignment_table").main([
        "--model", tiny_llama, "--n-shots", "2", "--limit-train", "40", "--limit-test", "6",
        "--n-calibration", "12", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert [r["dataset"] for r in results] == ["mfrc", "hs_brexit"]
    for res in results:
        assert res["n_test"] == 6 and res["n_calibration"] == 12
        rows = set(res["metrics"])
        assert {"constant prior", "max-over-generations", "unary breakdown", "binary breakdown",
                "Platt-calibrated max", "linear probe (hidden states)",
                "TF-IDF + linear (soft)"} <= rows
        for m in res["metrics"].values():
            assert m["nll"] > 0 and 0 <= m["example_f1"] <= 1
    text = out.read_text()
    assert text.count("| max-over-generations |") == 2 and "Command:" in text
