"""The ``sklml`` command line on a tiny model (in-process) and its error handling."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from sklearn_llm_multilabel.cli import main
from sklearn_llm_multilabel.datasets import get_data_home

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def table(tmp_path):
    """A CSV of texts with annotator proportions per label (two copies of the fixture texts)."""
    path = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", *LABELS])
        for copy in range(2):
            for text, labels in zip(TEXTS, LABEL_LISTS):
                shares = [1.0 if label in labels else round(float(rng.choice([0, 1 / 3])), 4)
                          for label in LABELS]
                writer.writerow([f"{text} {copy}", *shares])
    return path


def _png(path: Path, width: int, height: int) -> None:
    image = imread(path)
    assert image.shape[:2] == (height, width)
    assert image[..., :3].std() > 0.01  # not a blank canvas


def test_evaluate_writes_table_json_csv_plots_and_estimator(tiny_llama, table, tmp_path, capsys):
    out = tmp_path / "report"
    status = main(["evaluate", str(table), "--format", "csv", "--model", tiny_llama,
                   "--strategies", "first,max", "--n-shots", "2", "--test-size", "0.25",
                   "--out", str(out), "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    for row in ("| first |", "| max |", "| constant prior |", "| tf-idf + linear |"):
        assert row in printed
    results = json.loads((out / "results.json").read_text())
    assert results["n_test"] == 4 and results["labels"] == LABELS
    assert set(results["results"]) == {"first", "max", "constant prior", "tf-idf + linear"}
    assert all(np.isfinite(v["nll"]) for v in results["results"].values())
    with open(out / "results.csv") as f:
        assert len(list(csv.reader(f))) == 5
    _png(out / "metrics.png", 1200, 400)
    _png(out / "reliability_max.png", 600, 500)
    _png(out / "reliability.png", 650, 550)
    assert (out / "estimator.skops").is_file() and not (out / "estimator.joblib").exists()

    predictions = tmp_path / "pred.csv"
    assert main(["predict", "--model-dir", str(out), "--input", str(table),
                 "--output", str(predictions)]) == 0
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(TEXTS)
    assert all(0.0 <= float(row["p_weather"]) <= 1.0 for row in rows)


def test_saved_estimator_predicts_with_max_and_says_so(tiny_llama, table, tmp_path, capsys):
    """The saved estimator uses max (not the first strategy listed), every output names the
    aggregation, results.json records the run, and baselines come first with arrows."""
    from sklearn_llm_multilabel.persistence import load_estimator

    out = tmp_path / "report"
    assert main(["evaluate", str(table), "--format", "csv", "--model", tiny_llama,
                 "--strategies", "first,hard", "--n-shots", "2", "--test-size", "0.25",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    table_lines = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table_lines[0] == "| method | nll ↓ | l1 ↓ | example_f1 ↑ | brier ↓ | ece ↓ | " \
                             "micro_f1 ↑ | macro_f1 ↑ | manhattan ↓ |"
    assert [line.split(" | ")[0] for line in table_lines[1:]] == \
        ["| constant prior", "| first", "| hard", "| tf-idf + linear"]
    assert "aggregation='max'" in printed
    assert load_estimator(out / "estimator.skops").aggregation == "max"
    results = json.loads((out / "results.json").read_text())
    assert results["saved_aggregation"] == "max" and results["strategies"] == ["first", "hard"]
    assert results["seed"] == 0 and results["format"] == "csv" and results["runtime_seconds"] >= 0
    assert set(results["versions"]) >= {"sklearn_llm_multilabel", "torch", "transformers"}

    for strategy, expected in ((None, "max"), ("first", "first")):
        predictions = tmp_path / f"pred-{expected}.csv"
        extra = ["--strategy", strategy] if strategy else []
        assert main(["predict", "--model-dir", str(out), "--input", str(table),
                     "--output", str(predictions), *extra]) == 0
        assert f"aggregation={expected!r}" in capsys.readouterr().out
        with open(predictions) as f:
            assert {row["aggregation"] for row in csv.DictReader(f)} == {expected}


def test_report_notes_a_baseline_that_beats_every_llm_row():
    from sklearn_llm_multilabel.metrics._scorer import ALIGNMENT_METRICS
    from sklearn_llm_multilabel.report import EvaluationReport

    def row(nll, f1):
        return {m: 0.5 for m in ALIGNMENT_METRICS} | {"nll": nll, "example_f1": f1}

    rows = {"constant prior": row(1.0, 0.5), "max": row(2.0, 0.6), "first": row(3.0, 0.1),
            "tf-idf + linear": row(0.5, 0.9)}
    report = EvaluationReport(rows=rows, probas={}, llm_rows=["max", "first"], estimator=None,
                              label_names=["a"], y_test=np.zeros((1, 1)))
    assert report.baselines == ["constant prior", "tf-idf + linear"]
    assert report.beaten_by_baselines() == {"nll": ["constant prior", "tf-idf + linear"],
                                            "example_f1": ["tf-idf + linear"]}
    text = report.to_markdown()
    # one note, naming each baseline once with its metrics
    assert text.count("Note:") == 1
    assert ("Note: constant prior beats every LLM row on nll; tf-idf + linear beats every LLM "
            "row on nll, example_f1.") in text


def test_report_explains_the_priors_example_f1_when_most_items_have_no_label():
    from sklearn_llm_multilabel.metrics._scorer import ALIGNMENT_METRICS
    from sklearn_llm_multilabel.report import EvaluationReport

    rows = {"constant prior": {m: 0.9 for m in ALIGNMENT_METRICS},
            "max": {m: 0.5 for m in ALIGNMENT_METRICS}}
    y_test = np.array([[0.0, 0.0], [0.0, 0.4], [1.0, 0.0], [0.0, 0.0]])  # 3 of 4 have none
    kwargs = dict(rows=rows, probas={}, llm_rows=["max"], estimator=None,
                  label_names=["a", "b"], y_test=y_test, settings={"threshold": 0.5})
    notes = EvaluationReport(prior=np.array([0.2, 0.1]), **kwargs).notes()
    assert any("predicts no label for any text" in n and "75% of the test items" in n
               and "--include-empty-demos" not in n for n in notes)
    kwargs["settings"] = {"threshold": 0.5, "include_empty_demos": False}
    notes = EvaluationReport(prior=np.array([0.2, 0.1]), **kwargs).notes()
    assert any("Consider --include-empty-demos" in n for n in notes)
    # a prior that predicts a label: no such note
    notes = EvaluationReport(prior=np.array([0.6, 0.1]), **kwargs).notes()
    assert not any("predicts no label" in n for n in notes)


def test_commands_share_a_default_cache(tiny_llama, table, tmp_path, capsys, monkeypatch):
    """Without --cache-dir, evaluate fills the default cache and analyze scores nothing again;
    --no-cache keeps records in memory only."""
    from sklearn_llm_multilabel import clear_memory_cache, get_scoring_stats
    from sklearn_llm_multilabel.cli import default_cache_dir

    cache = tmp_path / "user-cache"
    monkeypatch.setenv("SKLML_CACHE_DIR", str(cache))
    assert default_cache_dir() == str(cache)
    common = [str(table), "--format", "csv", "--model", tiny_llama, "--n-shots", "2", "--quiet"]
    assert main(["evaluate", *common, "--strategies", "max", "--out", str(tmp_path / "r")]) == 0
    assert list(cache.glob("??/*.npz"))
    clear_memory_cache()
    before = get_scoring_stats()["texts_scored"]
    assert main(["analyze", *common, "--out", str(tmp_path / "s")]) == 0
    assert get_scoring_stats()["texts_scored"] == before
    assert main(["cache", "info"]) == 0 and str(cache) in capsys.readouterr().out
    monkeypatch.delenv("SKLML_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "sklearn_llm_multilabel")
    clear_memory_cache()
    assert main(["analyze", *common, "--no-cache", "--out", str(tmp_path / "t")]) == 0
    assert not (tmp_path / "xdg").exists()


def test_help_shows_defaults_groups_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "(default: max)" in text and "dataset:" in text and "model and run:" in text
    assert "``" not in text
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "sklml evaluate" in text and "``" not in text


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sklml {version('sklearn_llm_multilabel')}"


def test_analyze_writes_summary_and_figures(tiny_llama, table, tmp_path):
    out = tmp_path / "steps"
    assert main(["analyze", str(table), "--format", "csv", "--model", tiny_llama,
                 "--n-shots", "2", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "steps.json").read_text())
    assert summary["n_texts"] == 4
    assert "Table 4" in (out / "steps.md").read_text()
    _png(out / "step_statistics.png", 1200, 650)
    _png(out / "first_step_vs_output.png", 800, 400)
    _png(out / "label_alignment.png", 600, 400)


def test_evaluate_reads_a_count_table_with_options(tiny_llama, tmp_path):
    path = tmp_path / "counts.csv"  # tab-separated despite the name, as MFRC's file is
    rows = ["text\tweather\tsports\tNone"]
    for i, (text, labels) in enumerate(zip(TEXTS * 2, LABEL_LISTS * 2)):
        counts = [2 * ("weather" in labels), 1 * ("sports" in labels)]
        rows.append("\t".join([f"{text} {i}", *map(str, counts), str(3 - sum(counts) if sum(counts) < 3
                                                                      else 0)]))
    rows.append("too many annotators\t3\t3\t0")  # sums to 6: dropped by --keep-total 3
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "counts-report"
    assert main(["evaluate", str(path), "--format", "counts", "--delimiter", "tab",
                 "--labels", "weather,sports", "--none-columns", "None", "--keep-total", "3",
                 "--model", tiny_llama, "--strategies", "max", "--n-shots", "2",
                 "--test-size", "0.25", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_train"] + results["n_test"] == 2 * len(TEXTS)


def test_cache_info_and_clear(tiny_llama, table, tmp_path, capsys):
    cache = tmp_path / "cache"
    main(["evaluate", str(table), "--format", "csv", "--model", tiny_llama, "--strategies", "max",
          "--n-shots", "2", "--cache-dir", str(cache), "--out", str(tmp_path / "r"), "--quiet"])
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert "4 cached texts" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert not list(cache.glob("??/*.npz"))


@pytest.mark.parametrize("args, message", [
    (["evaluate", "missing.csv", "--format", "csv"], "no such file"),
    (["evaluate", "{table}", "--format", "tsv"], "invalid choice"),
    (["evaluate", "{table}", "--format", "csv", "--labels", "weather,hail"], "unknown label"),
    (["evaluate", "{empty}", "--format", "csv"], "no data rows"),
    (["evaluate", "{one}", "--format", "csv"], "at least 2 texts"),
    (["evaluate", "{json}", "--format", "csv"], "looks like --format lewidi"),
    (["evaluate", "{counts}", "--format", "csv"], "looks like --format counts"),
    (["evaluate", "{latin}", "--format", "csv"], "latin.csv:3: not valid utf-8 text"),
    (["evaluate", "{table}", "--format", "csv", "--labels", "hail"],
     "unknown label column(s) ['hail']; found ['text', 'weather', "),
    (["evaluate", "{table}", "--format", "csv", "--strategies", "best"], "unknown best"),
    (["predict", "--model-dir", "{tmp}", "--input", "{table}"], "estimator.skops: no such file"),
    (["cache", "info", "--cache-dir", "{tmp}/nope"], "no such cache directory"),
])
def test_bad_input_is_one_line_and_status_2(args, message, table, tmp_path, capsys):
    files = {"empty": "text,weather\n", "one": "text,weather\nrain,1\n",
             "json": '{"1": {"text": "t", "annotations": "1,0"}}',
             "counts": "text,weather,sports\nrain,2,0\ngoal,0,3\n"}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(content)
    paths["latin"] = tmp_path / "latin.csv"
    paths["latin"].write_bytes("text,weather\nrain,1\ncaf\u00e9,0\n".encode("latin-1"))
    args = [a.format(table=table, tmp=tmp_path, **paths) for a in args]
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith("sklml: error:") and message in err
    assert "Traceback" not in err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "sklearn_llm_multilabel", "cache", "info",
                             "--cache-dir", "/nonexistent-sklml"], capture_output=True, text=True)
    assert result.returncode == 2 and "no such cache directory" in result.stderr


def test_evaluate_reads_a_split_folder_of_the_shared_data(tiny_llama, tmp_path):
    try:  # skip before any loader runs when ../shared/data is absent
        folder = get_data_home() / "hs_brexit"
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")
    if not folder.is_dir():
        pytest.skip("../shared/data/hs_brexit is absent")
    out = tmp_path / "brexit"
    assert main(["evaluate", str(folder), "--format", "lewidi", "--model", tiny_llama,
                 "--strategies", "max", "--n-shots", "2", "--max-train", "30", "--max-test", "6",
                 "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["labels"] == ["hateful", "aggressive", "offensive"] and results["n_test"] == 6


def test_evaluate_strategies_calibrates_without_the_demonstrations(tiny_llama, monkeypatch):
    """The Platt row is fitted on the training texts minus the prompt's demonstrations, and
    the report carries what the CLI prints and saves."""
    from sklearn_llm_multilabel import DistributionCalibrator
    from sklearn_llm_multilabel.datasets import make_bunch
    from sklearn_llm_multilabel.report import evaluate_strategies

    Y = [[float(label in labels) for label in LABELS] for labels in LABEL_LISTS]
    train = make_bunch(TEXTS, Y, LABELS)
    seen = []
    fit = DistributionCalibrator.fit

    def recording_fit(self, S, y):
        seen.append((self.method, S.shape[0]))
        return fit(self, S, y)

    monkeypatch.setattr(DistributionCalibrator, "fit", recording_fit)
    report = evaluate_strategies(train, train, strategies=["max"], model=tiny_llama, n_shots=2,
                                 calibrate=True, show_progress=False, settings={"format": "x"})
    assert ("platt", len(TEXTS) - 2) in seen
    assert list(report.rows) == ["constant prior", "max", "max + platt", "tf-idf + linear"]
    assert report.llm_rows == ["max", "max + platt"]
    assert report.settings["format"] == "x" and report.settings["calibrate"] is True
    with pytest.raises(ValueError, match="unknown best"):
        evaluate_strategies(train, train, strategies=["best"], model=tiny_llama)


def test_evaluate_reads_a_wide_annotation_table(tiny_llama, tmp_path):
    path = tmp_path / "wide.csv"
    lines = ["text,A1_weather,A1_sports,A2_weather,A2_sports"]
    for i, (text, labels) in enumerate(zip(TEXTS * 2, LABEL_LISTS * 2)):
        w, s = int("weather" in labels), int("sports" in labels)
        lines.append(f"{text} {i},{w},{s},{w},{1 - s if i % 3 else s}")
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "wide-report"
    assert main(["evaluate", str(path), "--format", "annotations",
                 "--annotator-columns", r"(?P<annotator>A\d)_(?P<label>\w+)", "--model", tiny_llama,
                 "--strategies", "max", "--n-shots", "2", "--test-size", "0.25", "--out", str(out),
                 "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["labels"] == ["sports", "weather"] and results["format"] == "annotations"


def test_outputs_and_sizes_are_checked_before_any_work(tiny_llama, table, tmp_path, capsys,
                                                       monkeypatch):
    """Each bad output or size fails at once, with exit 2 and one line naming the flag, before
    the data is read or the model loads."""
    from sklearn_llm_multilabel import cli, get_scoring_stats

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(cli, "load_data", no_work)
    monkeypatch.setattr(cli, "_load_estimator", no_work)
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    source = tmp_path / "in.csv"
    source.write_text("text\nhello\n")
    common = [str(table), "--format", "csv", "--model", tiny_llama, "--quiet"]
    estimator = ["--estimator", str(tmp_path / "est.skops"), "--input", str(source)]
    cases = [
        (["evaluate", *common, "--out", str(a_file)], "--out"),
        (["analyze", *common, "--out", str(a_file)], "--out"),
        (["evaluate", *common, "--max-test", "0"], "--max-test"),
        (["evaluate", *common, "--max-train", "-3"], "--max-train"),
        (["predict", *estimator, "--output", str(tmp_path)], "--output"),
        (["predict", *estimator, "--output", str(tmp_path / "missing" / "p.csv")], "--output"),
        (["score", *estimator, "--output", str(a_file)], "--output"),
        (["score", *estimator, "--output", str(tmp_path / "s"), "--kinds", ""], "--kinds"),
        (["score", *estimator, "--output", str(tmp_path / "s"), "--kinds", "steps,ternary"],
         "--kinds"),
        (["score", *estimator, "--output", str(tmp_path / "s"), "--runner", "ray",
          "--gpus-per-worker", "-1"], "--gpus-per-worker"),
        (["score", *estimator, "--output", str(tmp_path / "s"), "--workers", "0"], "--workers"),
        (["evaluate", *common, "--out", "/proc/sklml-out"], "--out"),
    ]
    for argv, flag in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("sklml: error: " + flag) and "\n" not in err, (argv, err)
    assert a_file.read_text() == "keep me"
    assert get_scoring_stats()["texts_scored"] == 0


def test_predict_output_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails half way leaves neither a partial file nor a temporary behind."""
    import numpy as np

    from sklearn_llm_multilabel import cli

    class Est:
        aggregation = "max"
        label_names_ = np.array(["a", "b"], dtype=object)

        def predict_proba(self, texts):
            return np.full((len(texts), 2), 0.5)

        def predict(self, texts):
            return np.ones((len(texts), 2), dtype=int)

    monkeypatch.setattr(cli, "_load_estimator", lambda args: Est())
    (tmp_path / "x").write_bytes(b"")  # --estimator names a file (read by _load_estimator)
    source = tmp_path / "in.csv"
    source.write_text("text\nhello\nworld\n")
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", "--estimator", str(tmp_path / "x"), "--input", str(source), "--output",
                     str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith("hello,0.5")
    real_writer = cli.csv.writer

    class Failing:
        def __init__(self, fh):
            self.inner, self.rows = real_writer(fh), 0

        def writerow(self, row):
            self.rows += 1
            if self.rows == 3:
                raise OSError(28, "No space left on device")
            self.inner.writerow(row)

        def writerows(self, rows):
            for row in rows:
                self.writerow(row)

    monkeypatch.setattr(cli.csv, "writer", Failing)
    out.unlink()
    with pytest.raises(OSError):  # here the fallback file fails too: nothing is left anywhere
        cli.main(["predict", "--estimator", str(tmp_path / "x"), "--input", str(source),
                  "--output", str(out)])
    assert sorted(tmp_path.iterdir()) == sorted([source, tmp_path / "x"])


def test_evaluate_can_show_demonstrations_without_labels(tiny_llama, tmp_path):
    """--include-empty-demos reaches the estimator (the warning recommends it) and the report."""
    from sklearn_llm_multilabel.persistence import load_estimator

    path = tmp_path / "sparse.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", *LABELS])
        for copy in range(3):
            for i, (text, labels) in enumerate(zip(TEXTS, LABEL_LISTS)):
                empty = i % 2 == 0  # half of the items have no label
                writer.writerow([f"{text} {copy}", *(0.0 if empty else float(lab in labels)
                                                     for lab in LABELS)])
    out = tmp_path / "report"
    assert main(["evaluate", str(path), "--format", "csv", "--model", tiny_llama, "--strategies",
                 "max", "--n-shots", "3", "--include-empty-demos", "--quiet", "--out",
                 str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["include_empty_demos"] is True
    clf = load_estimator(out / "estimator.skops")
    assert clf.include_empty_demos and any(not labels for _, labels in clf.demonstrations_)
