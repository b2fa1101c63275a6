"""Saved estimators are data (skops), loaded with a list of trusted types; pickles only on request."""

import csv
import warnings

import joblib
import numpy as np
import pytest

from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.cli import main
from sklearn_llm_multilabel.exceptions import UntrustedFileError
from sklearn_llm_multilabel.persistence import load_estimator, save_estimator

from .conftest import LABEL_LISTS, TEXTS, saved_checkpoint_estimator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def fitted(spec, **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    return LLMMultiLabelClassifier(spec, **params).fit(TEXTS, LABEL_LISTS)


def _custom_aggregation(scores, mask):
    return np.full((scores.shape[0], scores.shape[2] - 1), 0.5)


def test_round_trip_predicts_identically(tiny_llama, tmp_path):
    clf = fitted(tiny_llama, threshold=[0.2, 0.5, 0.7], cache_dir=tmp_path / "steps")
    path = save_estimator(clf, tmp_path / "est.skops")
    loaded = load_estimator(path)
    assert loaded.get_params() == clf.get_params()
    assert loaded.demonstrations_ == clf.demonstrations_
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS))
    np.testing.assert_array_equal(loaded.predict(TEXTS), clf.predict(TEXTS))
    assert not list(tmp_path.glob(".*"))  # no temporary left beside the file


def test_pickles_are_refused_unless_trusted(tiny_llama, tmp_path):
    clf = fitted(tiny_llama)
    for suffix in (".joblib", ".pkl"):
        path = tmp_path / f"est{suffix}"
        joblib.dump(clf, path)
        with pytest.raises(UntrustedFileError, match="runs any code it holds when loaded"):
            load_estimator(path)
        assert load_estimator(path, trust_pickle=True).get_params() == clf.get_params()


def test_a_skops_file_with_untrusted_types_is_refused_naming_them(tiny_llama, tmp_path):
    clf = fitted(tiny_llama, aggregation=_custom_aggregation)
    path = save_estimator(clf, tmp_path / "est.skops")
    with pytest.raises(UntrustedFileError, match=r"not trusted: .*_custom_aggregation"):
        load_estimator(path)


def test_a_file_that_is_not_skops_is_refused(tmp_path):
    path = tmp_path / "est.skops"
    path.write_bytes(b"not a zip")
    with pytest.raises(UntrustedFileError, match="not a skops file"):
        load_estimator(path)


def test_cli_reads_pickles_only_with_trust_pickle(tiny_llama, tmp_path, capsys):
    clf = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt")
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in TEXTS[:3]]])
    capsys.readouterr()  # the checkpoint's save progress
    folder = tmp_path / "report"
    folder.mkdir()
    joblib.dump(clf, folder / "estimator.joblib")  # an evaluate folder of an earlier version
    for which in (["--model-dir", str(folder)], ["--estimator", str(folder / "estimator.joblib")]):
        assert main(["predict", *which, "--input", str(source), "--output",
                     str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--trust-pickle" in err and "runs any code" in err
        assert not (tmp_path / "p.csv").exists()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["predict", *which, "--input", str(source), "--output",
                         str(tmp_path / "p.csv"), "--trust-pickle"]) == 0
        (tmp_path / "p.csv").unlink()
        capsys.readouterr()
    save_estimator(clf.set_params(aggregation=_custom_aggregation), folder / "other.skops")
    assert main(["predict", "--estimator", str(folder / "other.skops"), "--input", str(source),
                 "--output", str(tmp_path / "p.csv")]) == 2
    assert "not trusted" in capsys.readouterr().err
