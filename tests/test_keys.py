"""Stored records found without the model: the fitted key recipe gives the scorer's own keys,
and is not used whenever it might not (changed parameters, model files or long texts)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sklearn_llm_multilabel.scoring import record_keys

from .conftest import TEXTS, saved_checkpoint_estimator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ODD_TEXTS = ["it ends here </s> and goes on", "café ☕ naïve", "<pad><s>", "plain words"]
STRATEGIES = ("first", "max", "mean", "hard", "unary", "binary")


@pytest.fixture
def stored(tiny_llama, tmp_path):
    """An estimator over a checkpoint folder whose records of TEXTS + ODD_TEXTS are stored."""
    clf = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt",
                                     cache_dir=str(tmp_path / "cache"))
    expected = {s: clf.set_params(aggregation=s).predict_proba(TEXTS + ODD_TEXTS)
                for s in STRATEGIES}
    return clf.set_params(aggregation="max"), expected


def _no_model(monkeypatch, clf):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was asked for")

    monkeypatch.setattr(type(clf), "_scorer_of", refuse)


def test_the_recipe_gives_the_scorers_keys(stored):
    clf, _ = stored
    assert set(clf.key_recipes_) == {"steps", "unary", "binary"}
    texts = clf.prepare_texts(TEXTS + ODD_TEXTS)
    for kind in ("steps", "unary", "binary"):
        assert clf._recipe(kind).keys(texts) == record_keys(clf, texts, kind=kind)


def test_stored_records_are_read_without_the_model(stored, monkeypatch):
    clf, expected = stored
    _no_model(monkeypatch, clf)
    for strategy in STRATEGIES:
        np.testing.assert_array_equal(
            clf.set_params(aggregation=strategy).predict_proba(TEXTS + ODD_TEXTS),
            expected[strategy])


@pytest.mark.parametrize("change", ["params", "file", "long text", "missing record"])
def test_the_model_decides_when_the_recipe_may_not_hold(change, stored, monkeypatch, tmp_path):
    clf, expected = stored
    texts = TEXTS + ODD_TEXTS
    if change == "params":
        clf.set_params(max_new_tokens=5)
    elif change == "file":
        config = tmp_path / "ckpt" / "config.json"
        stat = config.stat()
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    elif change == "long text":
        texts = texts + ["word " * clf.max_text_tokens]
    else:
        texts = texts + ["a text never scored"]
    asked = []
    original = type(clf)._scorer_of

    def recording(self, kind):
        asked.append(kind)
        return original(self, kind)

    monkeypatch.setattr(type(clf), "_scorer_of", recording)
    proba = clf.predict_proba(texts)
    assert asked == ["steps"]
    if change == "file":  # same weights, so the same keys: the records are found again
        np.testing.assert_array_equal(proba, expected["max"])


def test_a_relative_model_path_from_another_folder_is_not_trusted(tiny_llama, tmp_path,
                                                                  monkeypatch):
    import shutil

    from sklearn_llm_multilabel import LLMMultiLabelClassifier

    from .conftest import LABEL_LISTS

    saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt")
    shutil.copytree(tmp_path / "ckpt", tmp_path / "elsewhere" / "ckpt")
    monkeypatch.chdir(tmp_path)
    clf = LLMMultiLabelClassifier("ckpt", n_shots=2, show_progress=False).fit(TEXTS, LABEL_LISTS)
    assert clf._recipe("steps") is not None
    monkeypatch.chdir(tmp_path / "elsewhere")  # "ckpt" now names other files
    assert clf._recipe("steps") is None


def test_no_recipe_for_a_registered_model(tiny_llama):
    from sklearn_llm_multilabel import LLMMultiLabelClassifier

    from .conftest import LABEL_LISTS

    clf = LLMMultiLabelClassifier(tiny_llama, n_shots=2, show_progress=False)
    assert clf.fit(TEXTS, LABEL_LISTS).key_recipes_ == {}


def test_a_saved_estimator_predicts_stored_texts_without_the_model_libraries(stored, tmp_path):
    """In a new process: no transformers at all, and the prediction itself imports no torch
    (loading a .skops file may: skops lists scikit-learn's estimators when imported, and that
    walk imports scikit-learn's torch compatibility module when torch is installed)."""
    from sklearn_llm_multilabel.persistence import save_estimator

    clf, expected = stored
    path = tmp_path / "estimator.skops"
    save_estimator(clf, path)
    code = (
        "import json, sys\n"
        "from sklearn_llm_multilabel.persistence import load_estimator\n"
        f"clf = load_estimator({str(path)!r})\n"
        "before = set(sys.modules)\n"
        f"p = clf.predict_proba({json.dumps(TEXTS + ODD_TEXTS)})\n"
        "new = [m for m in set(sys.modules) - before if m.split('.')[0] in\n"
        "       ('torch', 'transformers', 'tokenizers', 'safetensors')]\n"
        "print(json.dumps({'proba': p.tolist(), 'new': new,\n"
        "                  'transformers': 'transformers' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["new"] == [] and not found["transformers"]
    np.testing.assert_array_equal(np.array(found["proba"]), expected["max"])


PLAN_RUN = """
import json, sys
from sklearn_llm_multilabel.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "skops": "skops" in sys.modules,
                  "torch": "torch" in sys.modules}))
"""


def test_a_fully_stored_sklml_predict_reads_the_plan_without_skops_or_torch(stored, tmp_path):
    """The plan beside the .skops file answers in a new process without importing skops or
    torch, with the same bytes as the full estimator; a changed estimator file, or a text
    whose record is missing, goes through the .skops file."""
    import csv

    from sklearn_llm_multilabel._plan import plan_path, stored_predictor
    from sklearn_llm_multilabel.persistence import save_estimator

    clf, _ = stored
    clf.set_params(cache_dir=tmp_path / "cache")  # a path object, as users pass it
    path = save_estimator(clf, tmp_path / "estimator.skops")
    assert plan_path(path).is_file()
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in TEXTS + ODD_TEXTS]])

    def predict(name, *extra):
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-c", PLAN_RUN, "predict", "--estimator",
                                 str(path), "--input", str(source), "--output", str(out),
                                 *extra], capture_output=True, text=True, timeout=300)
        found = json.loads(result.stdout.strip().splitlines()[-1])
        assert found["status"] == 0, result.stderr
        return found, out.read_bytes()

    for extra in ([], ["--strategy", "unary"]):
        fast, fast_bytes = predict("fast.csv", *extra)
        assert not fast["skops"] and not fast["torch"]
        plan = plan_path(path).read_bytes()
        plan_path(path).unlink()  # the .skops path, for the reference bytes
        full, full_bytes = predict("full.csv", *extra)
        plan_path(path).write_bytes(plan)
        assert full["skops"] and fast_bytes == full_bytes
    assert stored_predictor(path, ["a text the store has not seen"]) is None
    path.write_bytes(path.read_bytes() + b"\\0")  # another estimator file: its plan is not used
    assert stored_predictor(path, TEXTS) is None


def test_no_plan_where_it_could_not_be_exact(stored, tmp_path):
    from sklearn_llm_multilabel._plan import plan_path
    from sklearn_llm_multilabel.persistence import save_estimator

    clf, _ = stored
    path = tmp_path / "estimator.skops"
    save_estimator(clf, path)
    assert plan_path(path).is_file()
    save_estimator(clf.set_params(aggregation="binary"), path)  # a stale plan is removed
    assert not plan_path(path).exists()
    save_estimator(clf.set_params(aggregation="max", threshold=np.array([0.3, 0.5, 0.7])),
                   path)  # an array parameter: JSON would return a list
    assert not plan_path(path).exists()
