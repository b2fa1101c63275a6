"""``sklml evaluate``/``analyze`` on a user's own files: --train/--test, split folders, label
choice and renaming, recorded options and repeated runs (``--from``), test predictions."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sklearn_llm_multilabel.cli import main

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _annotations(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "annotator", "labels"])
        writer.writerows(rows)
    return path


def _long_rows(copy: int, labels=LABELS):
    """Two annotators per text: the first takes the fixture's labels, the second one fewer."""
    rows = []
    for i, (text, chosen) in enumerate(zip(TEXTS, LABEL_LISTS)):
        chosen = [label for label in chosen if label in labels]
        rows.append([f"{copy}-{i}", f"{text} {copy}", "a1", ",".join(chosen)])
        rows.append([f"{copy}-{i}", f"{text} {copy}", "a2", ",".join(chosen[1:])])
    return rows


@pytest.fixture
def split(tmp_path):
    train = _annotations(tmp_path / "mine_train.csv", _long_rows(0) + _long_rows(1))
    test = _annotations(tmp_path / "mine_test.csv", _long_rows(2))
    return train, test


def _error(args, capsys) -> str:
    try:
        status = main(args)
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith("sklml: error:"), err
    return err


def _run(tiny_llama, *extra):
    return ["--format", "annotations", "--model", tiny_llama, "--strategies", "first,max",
            "--n-shots", "2", "--quiet", *extra]


def test_train_and_test_files_are_read_as_given(tiny_llama, split, tmp_path, capsys):
    train, test = split
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(out))]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_train"] == 2 * len(TEXTS) and results["n_test"] == len(TEXTS)
    assert results["train_file"] == str(train.resolve())
    assert results["test_file"] == str(test.resolve())
    # the test part's ids, texts, annotator proportions and every method's probabilities
    with open(out / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [f"2-{i}" for i in range(len(TEXTS))]
    assert [r["text"] for r in rows] == [f"{t} 2" for t in TEXTS]
    labels = results["labels"]
    for method in ("first", "max", "tf-idf + linear"):
        for label in labels:
            values = np.array([float(r[f"{method}:{label}"]) for r in rows])
            assert ((values >= 0) & (values <= 1)).all()
    first = LABEL_LISTS[0]  # two annotators: one chose all of first, one all but its first
    expected = [1.0 if label in first[1:] else 0.5 if label in first else 0.0 for label in labels]
    assert [float(rows[0][f"annotators:{label}"]) for label in labels] == expected


def test_a_test_file_missing_a_label_is_aligned_to_the_training_labels(tiny_llama, tmp_path):
    """Labels read from rows: a label no test annotator chose is a column of zeros, in the
    training file's order (not a shifted column)."""
    train = _annotations(tmp_path / "a_train.csv", _long_rows(0) + _long_rows(1))
    kept = [label for label in LABELS if label != "weather"]
    test = _annotations(tmp_path / "a_test.csv", _long_rows(2, labels=kept))
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(out))]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "weather" in results["labels"]
    with open(out / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["annotators:weather"]) == 0.0 for r in rows)


@pytest.mark.parametrize("names, message", [
    (["x_train.csv", "y_train.csv", "x_test.csv"],
     "several *train* files for --format annotations: x_train.csv, y_train.csv"),
    (["x_train.csv"], "no *test* file for --format annotations (it holds x_train.csv)"),
])
def test_a_split_folder_must_hold_one_train_and_one_test_file(names, message, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in names:
        _annotations(folder / name, _long_rows(0))
    (folder / "train.json").write_text("{}")  # not a file --format annotations reads
    err = _error(["evaluate", str(folder), "--format", "annotations"], capsys)
    assert message in err and "--train FILE --test FILE" in err


@pytest.mark.parametrize("extra, message", [
    (["--train", "{train}"], "--test FILE is missing"),
    (["{train}", "--train", "{train}", "--test", "{test}"], "not both"),
    ([], "give DATA"),
    (["--train", "{tmp}", "--test", "{test}"], "is a folder"),
    (["--train", "{train}", "--test", "{test}", "--labels", "weather,hail"],
     "--labels: label(s) ['hail'] are not labels of mine_train.csv; its labels are "),
    (["--train", "{train}", "--test", "{test}", "--label-rename", "weather"],
     "each entry is old=new"),
    (["--train", "{train}", "--test", "{test}", "--label-rename", "hail=snow"],
     "cannot rename ['hail']"),
    (["--train", "{train}", "--test", "{test}", "--label-rename", f"{LABELS[0]}={LABELS[1]}"],
     f"gives label(s) ['{LABELS[1]}'] twice"),
])
def test_bad_split_and_label_options_are_one_line(extra, message, split, tmp_path, capsys):
    train, test = split
    args = [a.format(train=train, test=test, tmp=tmp_path) for a in extra]
    assert message in _error(["evaluate", *args, "--format", "annotations"], capsys)


def test_labels_choose_and_order_a_subset_and_rename_renames(tiny_llama, split, tmp_path):
    train, test = split
    out = tmp_path / "report"
    chosen = [LABELS[2], LABELS[0]]
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--labels",
                 ",".join(chosen), "--label-rename", f"{LABELS[2]}=renamed",
                 *_run(tiny_llama, "--out", str(out))]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["labels"] == ["renamed", LABELS[0]]
    with open(out / "test_predictions.csv", newline="") as f:
        row = next(csv.DictReader(f))
    first = LABEL_LISTS[0]
    share = 1.0 if LABELS[2] in first[1:] else 0.5 if LABELS[2] in first else 0.0
    assert float(row["annotators:renamed"]) == share


def test_a_run_repeated_from_its_results_gives_the_same_results(tiny_llama, split, tmp_path,
                                                                capsys):
    train, test = split
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--max-test", "5",
                 "--seed", "3", "--no-empty-demos",
                 *_run(tiny_llama, "--out", str(first), "--no-cache")]) == 0
    recorded = json.loads((first / "results.json").read_text())
    assert recorded["options"]["seed"] == 3 and recorded["options"]["max_test"] == 5
    assert recorded["options"]["model"] == tiny_llama
    assert recorded["command"].startswith("sklml evaluate --train ")
    assert "--max-test 5" in recorded["command"] and "--seed 3" in recorded["command"]
    capsys.readouterr()
    assert main(["evaluate", "--from", str(first / "results.json"), "--out", str(second),
                 "--quiet", "--no-cache"]) == 0
    again = json.loads((second / "results.json").read_text())
    assert again["results"] == recorded["results"] and again["options"] == recorded["options"]
    assert again["command"] == recorded["command"]  # against the defaults, not the recorded
    # the recorded command line repeats the run too
    import shlex

    words = shlex.split(recorded["command"])[1:]
    assert "--no-empty-demos" in words and "auto" not in words
    from_command = tmp_path / "from-command"
    assert main([*words, "--out", str(from_command), "--quiet", "--no-cache"]) == 0
    assert json.loads((from_command / "results.json").read_text())["results"] == \
        recorded["results"]
    assert (first / "test_predictions.csv").read_text() == \
        (second / "test_predictions.csv").read_text()
    # an option given with --from wins over the recorded one
    third = tmp_path / "third"
    assert main(["evaluate", "--from", str(first / "results.json"), "--max-test", "3",
                 "--out", str(third), "--quiet", "--no-cache"]) == 0
    assert json.loads((third / "results.json").read_text())["n_test"] == 3


def test_from_refuses_a_file_without_options(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": {}}))
    assert "no recorded options" in _error(["evaluate", "--from", str(path)], capsys)
    path.write_text(json.dumps({"options": {"format": "csv", "colour": "red"}}))
    assert "options ['colour'] are not options" in _error(["evaluate", "--from", str(path)],
                                                          capsys)


def test_analyze_records_its_options_and_reads_train_and_test(tiny_llama, split, tmp_path):
    train, test = split
    out = tmp_path / "steps"
    assert main(["analyze", "--train", str(train), "--test", str(test), "--format",
                 "annotations", "--model", tiny_llama, "--n-shots", "2", "--quiet", "--out",
                 str(out)]) == 0
    summary = json.loads((out / "steps.json").read_text(),  # strict JSON: no bare NaN
                         parse_constant=lambda name: pytest.fail(f"{name} in steps.json"))
    assert summary["options"]["test"] == str(test.resolve())
    assert summary["command"].startswith("sklml analyze --train ")


def test_evaluate_prints_intervals_and_records_them(tiny_llama, split, tmp_path, capsys):
    train, test = split
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(test), "--test", str(train), "--n-bootstrap", "200",
                 *_run(tiny_llama, "--out", str(out))]) == 0  # 16 test texts
    printed = capsys.readouterr().out
    assert "bootstrap interval over test texts (200 resamples)" in printed
    assert printed.count(" ± ") >= 4 * 8  # every cell of the four rows
    results = json.loads((out / "results.json").read_text())
    row = results["results"]["max"]
    assert row["nll_ci"][0] <= row["nll"] <= row["nll_ci"][1]
    assert "nll_vs_prior_ci" in row and "nll_vs_prior_ci" not in results["results"][
        "constant prior"]
    with open(out / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert "nll_low" in header and "manhattan_high" in header
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--n-bootstrap", "0",
                 *_run(tiny_llama, "--out", str(out))]) == 0
    assert " ± " not in capsys.readouterr().out


def test_evaluate_with_retrieved_demonstrations_and_prompt_ensembles(tiny_llama, split,
                                                                     tmp_path):
    from sklearn_llm_multilabel.persistence import load_estimator

    train, test = split
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--n-prompts", "2",
                 "--n-bootstrap", "0", *_run(tiny_llama, "--out", str(out))]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_prompts"] == 2 and results["options"]["n_prompts"] == 2
    assert len(load_estimator(out / "estimator.skops").prompt_demonstrations_) == 2
    # knn reaches the estimator (with the embedded sentence encoder)
    status = main(["evaluate", "--train", str(train), "--test", str(test), "--demo-selection",
                   "knn", "--n-bootstrap", "0", *_run(tiny_llama, "--out", str(out))])
    assert status == 0
    assert json.loads((out / "results.json").read_text())["demo_selection"] == "knn"
    assert load_estimator(out / "estimator.skops").demo_selection == "knn"


def test_analyze_with_prompt_ensembles_draws_the_demonstration_sensitivity(tiny_llama, split,
                                                                           tmp_path):
    train, test = split
    out = tmp_path / "steps"
    assert main(["analyze", "--train", str(train), "--test", str(test), "--format",
                 "annotations", "--model", tiny_llama, "--n-shots", "2", "--n-prompts", "3",
                 "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "steps.json").read_text())
    sensitivity = summary["demonstration_sensitivity"]
    assert sensitivity["n_prompts"] == 3
    assert set(sensitivity["mean_spread_per_label"]) == set(LABELS)
    assert all(v >= 0 for v in sensitivity["mean_spread_per_label"].values())
    assert (out / "demonstration_sensitivity.png").stat().st_size > 10_000


def test_evaluate_with_annotator_prompts(tiny_llama, split, tmp_path, capsys):
    train, test = split
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--demo-selection",
                 "annotator", "--n-bootstrap", "0", *_run(tiny_llama, "--out", str(out))]) == 0
    from sklearn_llm_multilabel.persistence import load_estimator

    assert load_estimator(out / "estimator.skops").prompt_annotators_ == ["a1", "a2"]
    capsys.readouterr()  # the run's warnings
    # a table without annotator ids cannot give annotator prompts
    table = tmp_path / "props.csv"
    table.write_text("text,a,b\n" + "".join(f"t{i},{i % 2},0.5\n" for i in range(8)))
    assert "needs each annotator's labels and id" in _error(
        ["evaluate", str(table), "--format", "csv", "--demo-selection", "annotator",
         "--model", tiny_llama, "--quiet"], capsys)


@pytest.mark.parametrize("fmt", ["counts", "csv"])
def test_test_predictions_carry_the_files_ids(tiny_llama, fmt, tmp_path):
    """An id column of a count or proportion table is the id of test_predictions.csv (not the
    row position), and is not read as a label."""
    def table(path, offset):
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "id", *LABELS])
            for i, (text, chosen) in enumerate(zip(TEXTS, LABEL_LISTS)):
                value = 2 if fmt == "counts" else 1
                writer.writerow([f"{text} {offset}", str(offset + 100 + i),
                                 *(value if label in chosen else 0 for label in LABELS)])
        return path

    train, test = table(tmp_path / "train.csv", 0), table(tmp_path / "test.csv", 1)
    extra = ["--labels", ",".join(LABELS), "--n-annotators", "2"] if fmt == "counts" else []
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--format", fmt,
                 "--model", tiny_llama, "--strategies", "max", "--n-shots", "2", "--quiet",
                 "--n-bootstrap", "0", "--out", str(out), *extra]) == 0
    assert json.loads((out / "results.json").read_text())["labels"] == LABELS
    with open(out / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [str(101 + i) for i in range(len(TEXTS))]


def test_a_csv_cell_past_the_field_limit_names_its_line(tiny_llama, split, tmp_path, capsys):
    train, test = split
    with open(test, "a", newline="") as f:
        csv.writer(f).writerow(["big", "x" * 200_000, "a1", LABELS[0]])
    line = len(test.read_text().splitlines())
    err = _error(["evaluate", "--train", str(train), "--test", str(test),
                  *_run(tiny_llama)], capsys)
    assert f"{test}:{line}: field larger than field limit" in err and "Parquet" in err
    source = tmp_path / "in.csv"
    source.write_text("text\nshort\n" + "y" * 200_000 + "\n")
    out = tmp_path / "r"
    assert main(["evaluate", "--train", str(train), "--test", str(train), *_run(tiny_llama),
                 "--n-bootstrap", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    err = _error(["predict", "--model-dir", str(out), "--input", str(source)], capsys)
    assert f"{source}:3: field larger than field limit" in err


def test_one_test_text_gets_no_intervals_and_says_why(tiny_llama, split, tmp_path, capsys):
    train, test = split
    for extra in (["--max-test", "1"], ["--n-bootstrap", "1"]):
        out = tmp_path / extra[-1]
        tested = test if extra[0] == "--max-test" else train  # 16 texts: enough
        assert main(["evaluate", "--train", str(train), "--test", str(tested),
                     *_run(tiny_llama, "--out", str(out), *extra)]) == 0
        printed = capsys.readouterr().out
        assert "▲" not in printed and "▼" not in printed and "±" not in printed
        why = ("1 text is too few to resample (at least 10)" if extra[0] == "--max-test" else
               "1 resample is too few for a percentile interval (at least 200)")
        assert f"No intervals: {why}." in printed
        results = json.loads((out / "results.json").read_text())
        assert not any(k.endswith("_ci") for row in results["results"].values() for k in row)
        assert results["no_intervals"] == f"no intervals: {why}"


def test_too_many_resamples_are_refused_before_any_work(tiny_llama, split, capsys):
    from sklearn_llm_multilabel import get_scoring_stats

    train, test = split
    before = get_scoring_stats()["texts_scored"]
    err = _error(["evaluate", "--train", str(train), "--test", str(test),
                  *_run(tiny_llama, "--n-bootstrap", "2000000000")], capsys)
    assert "--n-bootstrap must be 0 (no intervals) or at most 100000 resamples" in err
    assert get_scoring_stats()["texts_scored"] == before


def test_a_failing_baseline_is_reported_in_its_row_and_the_rest_saved(tiny_llama, tmp_path,
                                                                      capsys):
    """Texts without a word: TF-IDF has no vocabulary; the LLM rows are saved."""
    rows = [[f"i{i}", "🙂" * (1 + i % 3) + "!" * (i % 2), "a1", LABELS[i % 2]]
            for i in range(12)]
    train = _annotations(tmp_path / "train.csv", rows)
    test = _annotations(tmp_path / "test.csv", rows[:6])
    out = tmp_path / "report"
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(out))]) == 0
    printed = capsys.readouterr().out
    assert "| tf-idf + linear | failed: empty vocabulary" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["results"]) == ["constant prior", "first", "max"]
    assert "empty vocabulary" in results["failed_baselines"]["tf-idf + linear"]
    assert (out / "test_predictions.csv").is_file() and (out / "estimator.skops").is_file()


def test_an_unwritable_out_is_refused_before_work_and_a_failed_save_kept_elsewhere(
        tiny_llama, split, tmp_path, capsys, monkeypatch):
    from sklearn_llm_multilabel import get_scoring_stats
    from sklearn_llm_multilabel.report import EvaluationReport

    train, test = split
    before = get_scoring_stats()["texts_scored"]
    err = _error(["evaluate", "--train", str(train), "--test", str(test),
                  *_run(tiny_llama, "--out", "/proc/sklml-report")], capsys)
    assert "--out /proc/sklml-report: cannot be written" in err
    assert get_scoring_stats()["texts_scored"] == before
    save = EvaluationReport.save

    def fails_once(self, out, **kw):  # the disk fills up after the scoring
        if Path(out) == tmp_path / "full":
            raise OSError(28, "No space left on device")
        return save(self, out, **kw)

    monkeypatch.setattr(EvaluationReport, "save", fails_once)
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(tmp_path / "full"))]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err
    fallback = Path(err.split("were saved to ")[1].split(" instead")[0])
    assert (fallback / "results.json").is_file() and (fallback / "estimator.skops").is_file()


def test_predict_on_a_full_disk_keeps_the_predictions_and_leaves_no_partial(
        tiny_llama, split, tmp_path, capsys, monkeypatch):
    import builtins

    train, test = split
    out = tmp_path / "r"
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(out), "--n-bootstrap", "0")]) == 0
    source = tmp_path / "in.csv"
    source.write_text("text\n" + "\n".join(TEXTS[:3]) + "\n")
    target = tmp_path / "p.csv"
    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def opener(path, *a, **kw):
        fh = real_open(path, *a, **kw)
        return Full(fh) if str(path).endswith(".p.csv.partial") else fh

    monkeypatch.setattr(builtins, "open", opener)
    capsys.readouterr()
    assert main(["predict", "--model-dir", str(out), "--input", str(source), "--output",
                 str(target)]) == 1
    err = capsys.readouterr().err
    monkeypatch.undo()
    fallback = Path(err.split("were saved to ")[1].split(" instead")[0])
    assert not target.exists() and not list(tmp_path.glob(".p.csv*"))
    rows = list(csv.reader(real_open(fallback, newline="")))
    assert rows[0][0] == "text" and [r[0] for r in rows[1:]] == TEXTS[:3]


def test_from_a_deeply_nested_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in _error(["evaluate", "--from", str(path)], capsys)


def test_data_given_with_from_replaces_the_recorded_train_and_test(tiny_llama, split, tmp_path,
                                                                   capsys):
    train, test = split
    first = tmp_path / "first"
    assert main(["evaluate", "--train", str(train), "--test", str(test),
                 *_run(tiny_llama, "--out", str(first), "--n-bootstrap", "0")]) == 0
    assert main(["evaluate", str(train), "--from", str(first / "results.json"), "--out",
                 str(tmp_path / "second"), "--quiet"]) == 0
    again = json.loads((tmp_path / "second" / "results.json").read_text())
    assert again["data"] == str(train.resolve()) and again["train_file"] is None



def test_evaluate_reads_lewidi2025_and_reports_the_error_rate(tiny_llama, tmp_path, capsys):
    """--format lewidi2025 (guessed too), with LeWiDi's perspectivist error rate as a column:
    the prior predicts neutral for every annotator (the only training share of 0.5 or more)."""
    from sklearn_llm_multilabel.cli import guess_format
    from sklearn_llm_multilabel.metrics import perspectivist_error_rate

    names = ["contradiction", "entailment", "neutral"]

    def item(i, chosen):
        soft = {n: round(sum(n in c for c in chosen) / len(chosen), 2) for n in names}
        return {"annotation task": "natural language inference",
                "text": {"context": TEXTS[i % len(TEXTS)], "statement": f"claim {i}"},
                "annotators": "Ann1,Ann2", "number of annotations": 2,
                "annotations": {"Ann1": ",".join(chosen[0]), "Ann2": ",".join(chosen[1])},
                "soft_label": {n: {"0": round(1 - p, 2), "1": p} for n, p in soft.items()},
                "split": "train", "lang": "en", "other_info": {"explanations": []}}

    sets = [(["neutral"], ["neutral"]), (["contradiction"], ["neutral"]),
            (["entailment", "neutral"], ["contradiction"])]
    folder = tmp_path / "VariErrNLI"
    folder.mkdir()
    for split, n in (("train", 12), ("test", 12)):
        (folder / f"VariErrNLI_{split}.json").write_text(json.dumps(
            {str(i): item(i, sets[i % 3]) for i in range(n)}))
    assert guess_format(folder / "VariErrNLI_train.json") == "lewidi2025"
    out = tmp_path / "report"
    assert main(["evaluate", str(folder), "--format", "lewidi2025", "--model", tiny_llama,
                 "--strategies", "max", "--n-shots", "2", "--quiet", "--n-bootstrap", "200",
                 "--out", str(out)]) == 0
    assert "error_rate ↓" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())["results"]
    truth = [[list(a), list(b)] for a, b in (sets[i % 3] for i in range(12))]
    expected = perspectivist_error_rate(truth, [["neutral"]] * 12, names)
    assert expected != pytest.approx(perspectivist_error_rate(truth, [[]] * 12, names))
    assert results["constant prior"]["error_rate"] == pytest.approx(expected)
    assert {"error_rate", "error_rate_ci", "error_rate_vs_prior_ci"} <= set(results["max"])
