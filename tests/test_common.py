"""The scikit-learn contract for every estimator, on annotator-proportion targets.

scikit-learn's generic suite runs almost nothing for text input (and the
multi-output soft targets these estimators take), so the checks that matter
are written here once and run for every public estimator, as imbalanced-learn's
``test_common.py`` does.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier

from sklearn_llm_multilabel import (
    ConstantPriorClassifier,
    DistributionCalibrator,
    EncoderMultiLabelClassifier,
    LLMHiddenStateFeatures,
    LLMMultiLabelClassifier,
)
from sklearn_llm_multilabel.model_selection import MultiLabelTunedThresholdCV
from sklearn_llm_multilabel.testing import make_tiny_encoder_dir

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning"
)


def _proportions(n):
    rng = np.random.default_rng(0)
    return rng.integers(0, 4, (n, len(LABELS))) / 3


def _llm():
    return LLMMultiLabelClassifier(model="tiny-llama", labels=LABELS, n_shots=2,
                                   max_new_tokens=5, show_progress=False)


def _scores_data():
    H = _proportions(60)
    S = np.clip(H + np.random.default_rng(1).normal(0, 0.1, H.shape), 0.01, 0.99)
    return S, H


def _texts_data():
    Y = np.array([[label in row for label in LABELS] for row in LABEL_LISTS], dtype=float)
    return TEXTS, np.clip(Y * 2 / 3 + _proportions(len(TEXTS)) / 3, 0, 1)


_ENCODER_DIR = []


def _encoder():
    if not _ENCODER_DIR:
        _ENCODER_DIR.append(make_tiny_encoder_dir())
    return EncoderMultiLabelClassifier(_ENCODER_DIR[0], labels=LABELS, max_epochs=1,
                                       batch_size=4, show_progress=False)


CASES = {
    "ConstantPriorClassifier": (lambda: ConstantPriorClassifier(labels=LABELS), _texts_data,
                                "predict_proba"),
    "EncoderMultiLabelClassifier": (_encoder, _texts_data, "predict_proba"),
    "LLMMultiLabelClassifier": (_llm, _texts_data, "predict_proba"),
    "LLMHiddenStateFeatures": (lambda: LLMHiddenStateFeatures(_llm()), _texts_data, "transform"),
    "DistributionCalibrator": (DistributionCalibrator, _scores_data, "predict_proba"),
    "MultiLabelTunedThresholdCV": (
        lambda: MultiLabelTunedThresholdCV(DistributionCalibrator(), thresholds=5, cv=3),
        _scores_data, "predict"),
}


@pytest.fixture(params=sorted(CASES))
def case(request, tiny_llama):
    make, data, method = CASES[request.param]
    return make, data(), method


def test_clone_and_params_round_trip(case):
    make, _, _ = case
    est = make()
    params = est.get_params(deep=False)
    copy = clone(est)
    assert copy.get_params(deep=False).keys() == params.keys()
    assert copy.set_params(**params) is copy


def test_init_stores_parameters_only(case):
    make, _, _ = case
    est = make()
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def test_fit_returns_self_and_unfitted_use_raises(case):
    from sklearn.exceptions import NotFittedError

    make, (X, y), method = case
    est = make()
    with pytest.raises(NotFittedError):
        getattr(est, method)(X)
    assert est.fit(X, y) is est


def test_fit_is_idempotent(case):
    make, (X, y), method = case
    est = make()
    first = np.asarray(getattr(est.fit(X, y), method)(X))
    second = np.asarray(getattr(est.fit(X, y), method)(X))
    np.testing.assert_allclose(first, second)


def test_pickle_round_trip_gives_identical_output(case):
    make, (X, y), method = case
    est = make().fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(np.asarray(getattr(again, method)(X)),
                                  np.asarray(getattr(est, method)(X)))


def test_output_shapes_and_ranges(case):
    make, (X, y), method = case
    est = make().fit(X, y)
    out = np.asarray(getattr(est, method)(X))
    assert out.shape[0] == len(X)
    if method in ("predict_proba", "predict"):
        assert out.shape == (len(X), len(LABELS))
        assert np.all((out >= 0) & (out <= 1))
    if is_classifier(est):
        assert len(est.classes_) == len(LABELS)


def test_soft_targets_are_never_label_encoded(case):
    make, (X, y), _ = case
    assert set(np.unique(y)) - {0.0, 1.0}  # the data really are proportions
    est = make().fit(X, y)
    score = est.score(X, y) if hasattr(est, "score") else None
    assert score is None or np.isfinite(score)


def test_feature_names_where_they_apply(case):
    make, (X, y), method = case
    est = make().fit(X, y)
    if not hasattr(est, "get_feature_names_out"):
        pytest.skip("no transform output names")
    names = est.get_feature_names_out()
    assert len(names) == np.asarray(est.transform(X)).shape[1]
    if isinstance(est, DistributionCalibrator):
        assert est.n_features_in_ == len(LABELS)


def _public_estimators() -> dict[str, type]:
    """Every estimator class the package exposes under a public name, found by walking it."""
    import importlib
    import inspect
    import pkgutil

    from sklearn.base import BaseEstimator

    import sklearn_llm_multilabel as pkg

    found = {}
    modules = [pkg] + [importlib.import_module(info.name) for info in
                       pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}.")
                       if not any(part.startswith("_") for part in info.name.split(".")[1:])]
    for module in modules:
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if (inspect.isclass(obj) and issubclass(obj, BaseEstimator)
                    and obj.__module__.startswith(pkg.__name__) and not name.startswith("_")):
                found[name] = obj
    return found


def test_every_public_estimator_is_checked_here():
    assert set(_public_estimators()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameter_validation_follows_the_constraints(name, tiny_llama):
    """scikit-learn's own check: every constraint in ``_parameter_constraints`` is enforced in
    ``fit`` with its InvalidParameterError, for every public estimator."""
    from sklearn.utils.estimator_checks import check_param_validation

    make, _, _ = CASES[name]
    check_param_validation(name, make())
