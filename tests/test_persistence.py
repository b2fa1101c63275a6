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


def _dump(estimator, path):
    """A skops file written without save_estimator's checks (as another program may)."""
    import skops.io as sio

    sio.dump(estimator, path)
    return path


def test_a_skops_file_with_untrusted_types_is_refused_naming_them(tiny_llama, tmp_path):
    clf = fitted(tiny_llama, aggregation=_custom_aggregation)
    path = _dump(clf, tmp_path / "est.skops")
    with pytest.raises(UntrustedFileError, match=r"not trusted: .*_custom_aggregation"):
        load_estimator(path)


def test_save_refuses_what_load_would_refuse_and_writes_nothing(tiny_llama, tmp_path):
    clf = fitted(tiny_llama, aggregation=_custom_aggregation)
    with pytest.raises(UntrustedFileError, match=r"not written: .*_custom_aggregation"):
        save_estimator(clf, tmp_path / "est.skops")
    assert not list(tmp_path.iterdir())


def test_a_pipeline_with_a_calibrator_round_trips(tiny_llama, tmp_path):
    from sklearn.pipeline import make_pipeline

    from sklearn_llm_multilabel import DistributionCalibrator

    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]] * 3)[:len(TEXTS)]
    pipe = make_pipeline(LLMMultiLabelClassifier(tiny_llama, labels=["a", "b", "c"], n_shots=2,
                                                 show_progress=False, max_new_tokens=6),
                         DistributionCalibrator())
    pipe.fit(TEXTS, Y)
    loaded = load_estimator(save_estimator(pipe, tmp_path / "pipe.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), pipe.predict_proba(TEXTS))
    calibrator = load_estimator(save_estimator(pipe[-1], tmp_path / "cal.skops"))
    X = np.random.default_rng(0).random((5, 3))
    np.testing.assert_array_equal(calibrator.predict_proba(X), pipe[-1].predict_proba(X))


def test_a_file_cannot_switch_on_remote_code(tiny_llama, tmp_path):
    from sklearn.pipeline import make_pipeline

    from sklearn_llm_multilabel import DistributionCalibrator

    clf = fitted(tiny_llama).set_params(trust_remote_code=True)
    for estimator in (clf, make_pipeline(clf, DistributionCalibrator())):
        path = _dump(estimator, tmp_path / "remote.skops")
        with pytest.raises(UntrustedFileError, match=r"trust_remote_code=True, which lets its "
                                                     r"model folder run"):
            load_estimator(path)
        loaded = load_estimator(path, trust_remote_code=True)
        assert loaded.get_params(deep=True)[
            "trust_remote_code" if estimator is clf else
            "llmmultilabelclassifier__trust_remote_code"] is True


def test_cli_refuses_remote_code_from_a_file(tiny_llama, tmp_path, capsys):
    clf = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt", trust_remote_code=True)
    path = _dump(clf, tmp_path / "remote.skops")
    source = tmp_path / "in.csv"
    source.write_text("text\n" + "\n".join(TEXTS[:2]) + "\n")
    capsys.readouterr()
    assert main(["predict", "--estimator", str(path), "--input", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --trust-remote-code if you trust" in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", "--estimator", str(path), "--input", str(source),
                     "--trust-remote-code"]) == 0


def test_a_file_that_inflates_past_the_bounds_is_refused_before_reading(tiny_llama, tmp_path,
                                                                       monkeypatch):
    import zipfile

    import skops.io as sio

    path = save_estimator(fitted(tiny_llama), tmp_path / "est.skops")
    bomb = tmp_path / "bomb.skops"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "schema.json":  # valid JSON padded with 65 MiB of spaces
                data = data + b" " * (65 * 2**20)
            dst.writestr(item.filename, data)
    assert bomb.stat().st_size < 2**20
    read = []
    monkeypatch.setattr(sio, "get_untrusted_types", lambda **kw: read.append(kw) or [])
    with pytest.raises(UntrustedFileError, match=r"schema.json decompresses to 65 MiB"):
        load_estimator(bomb)
    with pytest.raises(UntrustedFileError, match=r"more than max_bytes=1000 "):
        load_estimator(path, max_bytes=1000)
    assert not read  # refused from the zip directory, before skops read anything


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
    _dump(clf.set_params(aggregation=_custom_aggregation), folder / "other.skops")
    assert main(["predict", "--estimator", str(folder / "other.skops"), "--input", str(source),
                 "--output", str(tmp_path / "p.csv")]) == 2
    assert "not trusted" in capsys.readouterr().err
