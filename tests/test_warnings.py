"""Warnings are signal: shown at the user's line, once per kind and call, one line in the CLI;
names the model writes outside the label set are reported."""

import json
import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.cli import main
from sklearn_llm_multilabel.exceptions import (
    DemonstrationWarning,
    IdenticalGenerationsWarning,
    NoLabelStepWarning,
    TruncationWarning,
    UnknownLabelWarning,
)
from sklearn_llm_multilabel.metrics import alignment_scorers

from .conftest import LABEL_LISTS, LABELS, TEXTS

LONG_TEXTS = [f"{t} and then the rain and the game and the vote went on" for t in TEXTS]


def make_clf(spec, **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    return LLMMultiLabelClassifier(spec, **params)


def record(call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, seen


def test_unknown_labels_are_reported_once_per_call_with_share_and_names(tiny_llama):
    # the tiny random model writes one string that is no label for every text
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    _, seen = record(lambda: clf.predict(TEXTS))
    unknown = [w for w in seen if w.category is UnknownLabelWarning]
    assert len(unknown) == 1
    traces = clf.predict_steps(TEXTS)
    name = traces[0]["unknown_labels"][0]
    assert str(unknown[0].message).startswith(
        f"The model wrote names outside the label set for 8 of 8 texts (100.0%), most often: "
        f"{name!r} (8)")
    assert unknown[0].filename == __file__


def test_known_labels_give_no_unknown_label_warning(tiny_llama, tiny_tokenizer):
    from sklearn_llm_multilabel import register_model
    from sklearn_llm_multilabel.testing import ScriptedCausalLM, make_tiny_model

    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    words = "the rain fell team game won sunny day snow vote minister match".split()
    queries = [f"a {word} again" for word in words]
    lengths = {len(tiny_tokenizer(clf.prompt_.replace("{text}", q))["input_ids"]) for q in queries}
    assert len(lengths) == 1
    script = tiny_tokenizer.encode(" sports, fun\n", add_special_tokens=False)
    register_model("tiny-fun", ScriptedCausalLM(make_tiny_model(tiny_tokenizer, seed=0), script,
                                                lengths.pop()), tiny_tokenizer)
    scripted = make_clf("tiny-fun").fit(TEXTS, LABEL_LISTS)
    _, seen = record(lambda: scripted.predict_proba(queries))
    messages = [str(w.message) for w in seen if w.category is UnknownLabelWarning]
    assert messages == ["The model wrote names outside the label set for 12 of 12 texts (100.0%), "
                        "most often: 'fun' (12); they are not scored as labels. predict_steps() "
                        "shows them per text."]
    assert scripted.predict_steps(queries[:1])[0]["unknown_labels"] == ["fun"]
    # the identical label lists are reported too, with their share
    assert any(w.category is IdenticalGenerationsWarning and "12 of 12 generations (100%)"
               in str(w.message) for w in seen)


def test_each_kind_of_warning_once_per_fit_at_the_users_line(tiny_llama):
    clf = make_clf(tiny_llama, n_shots=8, max_text_tokens=3)
    _, seen = record(lambda: clf.fit(LONG_TEXTS, LABEL_LISTS))
    kinds = [w.category for w in seen]
    # demonstrations and breakdown demonstrations are both cut: one TruncationWarning
    assert kinds.count(TruncationWarning) == 1 and kinds.count(DemonstrationWarning) == 1
    assert "more TruncationWarning in this call" in str(
        next(w.message for w in seen if w.category is TruncationWarning))
    assert all(w.filename == __file__ for w in seen)


def test_predict_warns_once_per_kind_although_it_calls_predict_proba(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    _, seen = record(lambda: clf.predict(TEXTS * 2))
    kinds = [w.category for w in seen]
    assert kinds.count(NoLabelStepWarning) == 1 and kinds.count(UnknownLabelWarning) == 1
    assert all(w.filename == __file__ for w in seen)


def test_a_search_warns_at_the_line_that_runs_it(tiny_llama):
    search = GridSearchCV(make_clf(tiny_llama, labels=LABELS), {"threshold": [0.3, 0.6]}, cv=2,
                          scoring=alignment_scorers(), refit="nll")
    Y = np.array([[label in row for label in LABELS] for row in LABEL_LISTS], dtype=float)
    _, seen = record(lambda: search.fit(TEXTS, Y))
    ours = [w for w in seen if w.category.__module__ == "sklearn_llm_multilabel.exceptions"]
    assert ours and all(w.filename == __file__ for w in ours)


def test_cli_prints_each_warning_as_one_line_and_records_unknown_labels(tiny_llama, tmp_path,
                                                                        capsys):
    import csv

    path = tmp_path / "data.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", *LABELS])
        for copy in range(3):
            for text, labels in zip(TEXTS, LABEL_LISTS):
                writer.writerow([f"{text} {copy}", *(float(lab in labels) for lab in LABELS)])
    out = tmp_path / "report"
    assert main(["evaluate", str(path), "--format", "csv", "--model", tiny_llama,
                 "--strategies", "max", "--n-shots", "2", "--test-size", "0.5", "--quiet",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    warned = [line for line in lines if line.startswith("sklml: warning: ")]
    assert any("UnknownLabelWarning" in line for line in warned)
    assert warned == lines  # no source lines, no tracebacks
    results = json.loads((out / "results.json").read_text())
    summary = results["unknown_labels"]
    assert summary["n_texts"] == results["n_test"] == 12 and summary["n_affected"] == 12
    assert "Note: on the test texts the model wrote names outside the label set for 12 of 12" \
        in captured.out
    dominant = results["dominant_generation"]
    assert dominant["n_texts"] == 12 and dominant["count"] > 6


def test_warnings_once_per_kind_is_per_thread():
    from concurrent.futures import ThreadPoolExecutor

    from sklearn_llm_multilabel._warnings import one_per_call, warn

    @one_per_call
    def job(i):
        warn(f"job {i}", UserWarning)
        return i

    def run(i):
        _, seen = record(lambda: job(i))
        return [str(w.message) for w in seen]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(8)))
    assert results == [[f"job {i}"] for i in range(8)]


@pytest.mark.parametrize("n_distinct", [1, 3])
def test_one_per_call_merges_a_kind(n_distinct):
    from sklearn_llm_multilabel._warnings import one_per_call, warn

    @one_per_call
    def job():
        for i in range(6):
            warn(f"entry {i % n_distinct}", UserWarning)

    _, seen = record(job)
    expected = "entry 0" + (f" ({n_distinct - 1} more UserWarning in this call.)"
                            if n_distinct > 1 else "")
    assert [str(w.message) for w in seen] == [expected]
