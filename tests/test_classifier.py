"""The scikit-learn contract of LLMMultiLabelClassifier, on a tiny model."""

import pickle

import numpy as np
import pytest
import sklearn.utils.estimator_checks as sk_checks
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_llm_multilabel import LLMMultiLabelClassifier, get_scoring_stats
from sklearn_llm_multilabel.aggregation import aggregate_max
from sklearn_llm_multilabel.metrics import example_f1

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning"
)


def make_clf(spec="tiny-llama", **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    return LLMMultiLabelClassifier(model=spec, **params)


# --- scikit-learn's own checks -------------------------------------------------
# For an estimator tagged string input (two_d_array=False), scikit-learn yields
# only check_estimator_cloneable. We run that through parametrize_with_checks and
# run by hand every generic check that needs no numeric X. Expected failures:
EXPECTED_FAILED_CHECKS = {
    "check_positive_only_tag_during_fit": (
        "feeds a numeric matrix as X; X must be texts, so fit rejects it (correctly) with "
        "a ValueError before any positivity question arises"
    ),
}
DATA_FREE_CHECKS = [
    "check_parameters_default_constructible", "check_no_attributes_set_in_init",
    "check_get_params_invariance", "check_set_params", "check_estimator_repr",
    "check_do_not_raise_errors_in_init_or_set_params", "check_valid_tag_types",
    "check_estimator_cloneable", "check_param_validation", "check_estimator_tags_renamed",
    "check_estimator_sparse_tag", "check_mixin_order", *EXPECTED_FAILED_CHECKS,
]


@parametrize_with_checks([LLMMultiLabelClassifier()])
def test_sklearn_yielded_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check_name", DATA_FREE_CHECKS)
def test_sklearn_generic_checks(check_name):
    check = getattr(sk_checks, check_name)
    if check_name in EXPECTED_FAILED_CHECKS:
        pytest.xfail(EXPECTED_FAILED_CHECKS[check_name])
    check("LLMMultiLabelClassifier", LLMMultiLabelClassifier(model="tiny-llama"))


# --- contract ------------------------------------------------------------------
def test_fit_returns_self_and_sets_fitted_attributes(tiny_llama):
    clf = make_clf(tiny_llama)
    assert clf.fit(TEXTS, LABEL_LISTS) is clf
    assert list(clf.label_names_) == sorted(LABELS)
    assert len(clf.classes_) == 3 and all((c == [0, 1]).all() for c in clf.classes_)
    assert len(clf.demonstrations_) == 2 and len(clf.demonstration_indices_) == 2
    for (text, labels), i in zip(clf.demonstrations_, clf.demonstration_indices_):
        assert text == TEXTS[i] and sorted(labels) == sorted(LABEL_LISTS[i])
    assert clf.prompt_.endswith("Input: {text}\nLabel(s):")
    assert is_classifier(clf)


def test_not_fitted(tiny_llama):
    for method in ("predict", "predict_proba", "transform", "predict_steps"):
        with pytest.raises(NotFittedError):
            getattr(make_clf(tiny_llama), method)(TEXTS)


def test_outputs_shapes_and_ranges(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    for aggregation in ("max", "first", "mean", "hard"):
        proba = clf.set_params(aggregation=aggregation).predict_proba(TEXTS)
        assert proba.shape == (len(TEXTS), 3)
        assert ((proba > 0) & (proba < 1)).all()
        pred = clf.predict(TEXTS)
        assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1}
        np.testing.assert_array_equal(pred, (proba >= 0.5).astype(int))
        np.testing.assert_array_equal(clf.transform(TEXTS), proba)


def test_per_label_threshold(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba(TEXTS)
    thresholds = np.array([0.01, 0.99, 0.5])
    pred = clf.set_params(threshold=thresholds).predict(TEXTS)
    np.testing.assert_array_equal(pred, (proba >= thresholds).astype(int))
    assert pred[:, 0].all() and not pred[:, 1].any()


def test_score_is_example_f1(tiny_llama):
    clf = make_clf(tiny_llama, labels=LABELS).fit(TEXTS, LABEL_LISTS)
    Y = np.array([[lab in row for lab in LABELS] for row in LABEL_LISTS], float)
    assert clf.score(TEXTS, Y) == pytest.approx(example_f1(Y, clf.predict(TEXTS)))
    assert clf.score(TEXTS, LABEL_LISTS) == clf.score(TEXTS, Y)


def test_y_as_indicators_proportions_and_label_lists_agree(tiny_llama):
    Y = np.array([[lab in row for lab in LABELS] for row in LABEL_LISTS], float)
    soft = np.clip(Y * 0.67 + (1 - Y) * 0.33, 0, 1)  # binarises back to Y
    fitted = [
        make_clf(tiny_llama, labels=LABELS).fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, labels=LABELS).fit(TEXTS, Y.astype(int)),
        make_clf(tiny_llama, labels=LABELS).fit(TEXTS, soft),
    ]
    prompts = {clf.prompt_ for clf in fitted}
    assert len(prompts) == 1


def test_callable_aggregation(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS)
    np.testing.assert_allclose(clf.set_params(aggregation=aggregate_max).predict_proba(TEXTS),
                               expected)
    with pytest.raises(ValueError, match="aggregation returned shape"):
        clf.set_params(aggregation=lambda s, m: s[:, 0, :]).predict_proba(TEXTS)


def test_pickle_and_clone_keep_only_the_spec(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS)
    payload = pickle.dumps(clf)
    assert len(payload) < 20_000  # no model, tokenizer or tensors inside
    restored = pickle.loads(payload)
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), expected)
    assert clone(clf).get_params() == clf.get_params()
    assert get_scoring_stats()["texts_scored"] == len(TEXTS)


def test_pipeline_step(tiny_llama):
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(make_clf(tiny_llama), FunctionTransformer(np.log))
    out = pipe.fit(TEXTS, LABEL_LISTS).transform(TEXTS)
    assert out.shape == (len(TEXTS), 3) and (out < 0).all()


def test_predict_steps_and_hidden_states(tiny_llama, tiny_tokenizer):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    traces = clf.predict_steps(TEXTS[:3])
    for trace in traces:
        n_steps = max(len(trace["step_labels"]), 1)
        assert trace["step_distributions"].shape == (n_steps, 4)
        np.testing.assert_allclose(trace["step_distributions"].sum(axis=1), 1.0)
        assert isinstance(trace["generated_text"], str)
        assert set(trace["parsed_labels"]) <= set(LABELS)
    hidden = clf.first_step_hidden_states(TEXTS)
    assert hidden.shape == (len(TEXTS), 16) and np.isfinite(hidden).all()


def test_zero_shots_and_json_format(tiny_llama):
    clf = make_clf(tiny_llama, n_shots=0, label_format="json").fit(TEXTS, LABEL_LISTS)
    assert clf.demonstrations_ == []
    assert clf.predict_proba(TEXTS[:2]).shape == (2, 3)


# --- bad input -----------------------------------------------------------------
@pytest.mark.parametrize("X, error, match", [
    ([], ValueError, "empty"),
    (["ok", ""], ValueError, r"X\[1\] is an empty"),
    (["ok", "   "], ValueError, "whitespace-only"),
    (["ok", 3], TypeError, r"X\[1\] must be a string"),
    ("a single string", TypeError, "single str"),
])
def test_bad_texts(tiny_llama, X, error, match):
    with pytest.raises(error, match=match):
        make_clf(tiny_llama).fit(X, [["weather"]] * max(len(X), 1))
    fitted = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    with pytest.raises(error, match=match):
        fitted.predict_proba(X)


@pytest.mark.parametrize("y, labels, match", [
    (np.zeros((3, 3)), LABELS, "y has 3 rows but X has 8"),
    (np.zeros((8, 2)), LABELS, "y has 2 columns but labels has 3"),
    (np.full((8, 3), 1.5), LABELS, r"proportions in \[0, 1\]"),
    (np.full((8, 3), -0.1), LABELS, r"proportions in \[0, 1\]"),
    (np.full((8, 3), np.nan), LABELS, "NaN"),
    (np.zeros((8, 3)), None, "labels=None but y is a matrix"),
    (np.zeros(8), LABELS, "must be 2-d"),
    ([["weather"], ["fog"]] + LABEL_LISTS[2:], LABELS, r"not in labels.*\['fog'\]"),
    ([[]] * 8, None, "no label at all"),
])
def test_bad_targets(tiny_llama, y, labels, match):
    with pytest.raises(ValueError, match=match):
        make_clf(tiny_llama, labels=labels).fit(TEXTS, y)


@pytest.mark.parametrize("labels, match", [
    (["weather", "sports, news", "politics"], "separator"),
    (["weather", "Weather", "politics"], "Duplicate label"),
    (["weather", "none", "politics"], "none_label"),
    (["weather", "", "politics"], "non-empty"),
    (["weather", "sports\n", "politics"], "whitespace"),
])
def test_bad_label_names(tiny_llama, labels, match):
    with pytest.raises(ValueError, match=match):
        make_clf(tiny_llama, labels=labels).fit(TEXTS, np.zeros((8, 3)))


def test_json_format_allows_commas_in_labels(tiny_llama):
    labels = ["weather", "sports, news", "politics"]
    Y = np.eye(8, 3)
    Y[3, :2] = Y[4, 1:] = 1
    clf = make_clf(tiny_llama, labels=labels, label_format="json").fit(TEXTS, Y)
    assert list(clf.label_names_) == labels


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.2])
def test_threshold_outside_unit_interval(tiny_llama, threshold):
    with pytest.raises(InvalidParameterError, match="threshold"):
        make_clf(tiny_llama, threshold=threshold).fit(TEXTS, LABEL_LISTS)


def test_threshold_arrays_checked(tiny_llama):
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        make_clf(tiny_llama, threshold=[0.5, 0.5]).fit(TEXTS, LABEL_LISTS)
    with pytest.raises(ValueError, match="open interval"):
        make_clf(tiny_llama, threshold=[0.5, 0.5, 1.0]).fit(TEXTS, LABEL_LISTS)
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    with pytest.raises(ValueError, match="open interval"):
        clf.set_params(threshold=[0.5, 0.0, 0.5]).predict(TEXTS)


def test_invalid_parameters_raise_sklearn_errors(tiny_llama):
    for params in ({"aggregation": "median"}, {"n_shots": -1}, {"label_format": "xml"},
                   {"batch_size": 0}):
        with pytest.raises(InvalidParameterError):
            make_clf(tiny_llama, **params).fit(TEXTS, LABEL_LISTS)


def test_chat_template_required_when_requested(tiny_llama):
    from sklearn_llm_multilabel.exceptions import TokenizerError

    with pytest.raises(TokenizerError, match="no chat template"):
        make_clf(tiny_llama, use_chat_template=True).fit(TEXTS, LABEL_LISTS)


def test_chat_template_prompt(tiny_llama, tiny_tokenizer):
    from copy import deepcopy

    from sklearn_llm_multilabel import load_model, register_model

    tokenizer = deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    register_model("tiny-chat", load_model("tiny-llama", device="cpu").model, tokenizer)
    clf = make_clf("tiny-chat", use_chat_template=True).fit(TEXTS, LABEL_LISTS)
    assert clf.prompt_.startswith("<s>user\nClassify")
    assert clf.prompt_.endswith("Input: {text}\nLabel(s):</s>\n<s>assistant\n")
    assert clf.predict_proba(TEXTS[:3]).shape == (3, 3)


def test_dataframe_targets_name_the_labels(tiny_llama):
    pd = pytest.importorskip("pandas")
    Y = pd.DataFrame([[lab in row for lab in LABELS] for row in LABEL_LISTS], columns=LABELS)
    clf = make_clf(tiny_llama).fit(pd.Series(TEXTS), Y.astype(int))
    assert list(clf.label_names_) == LABELS


def test_re_registering_a_name_uses_the_new_model(tiny_tokenizer):
    from sklearn_llm_multilabel import register_model
    from sklearn_llm_multilabel.testing import make_tiny_model

    register_model("tiny-swap", make_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer)
    clf = make_clf("tiny-swap").fit(TEXTS, LABEL_LISTS)
    before = clf.predict_proba(TEXTS[:2])
    register_model("tiny-swap", make_tiny_model(tiny_tokenizer, seed=1), tiny_tokenizer)
    after = clf.predict_proba(TEXTS[:2])
    assert get_scoring_stats()["texts_scored"] == 4  # new weights, new cache keys
    assert not np.allclose(before, after)


def test_a_label_list_too_long_for_the_context_is_refused_in_fit(tiny_llama):
    from sklearn_llm_multilabel.exceptions import ContextLengthError

    names = [f"topic{i}" for i in range(100_000)]
    Y = np.zeros((len(TEXTS), len(names)))
    Y[np.arange(len(TEXTS)), np.arange(len(TEXTS))] = 1
    with pytest.raises(ContextLengthError, match=r"The label list \(100000 labels\) takes \d+ "
                                                 r"tokens; .*the label list alone does not fit"):
        make_clf(tiny_llama, labels=names).fit(TEXTS, Y)


def test_demonstrations_too_long_for_the_context_are_named_in_fit(tiny_llama):
    from sklearn_llm_multilabel.exceptions import ContextLengthError

    long_texts = [f"{t} " + "storm snow cloud goal score " * 40 for t in TEXTS]
    with pytest.raises(ContextLengthError, match=r"The label list \(3 labels\) takes \d+ tokens; "
                                                 r"with the instruction, 8 demonstrations .* "
                                                 r"fewer demonstrations \(n_shots\)"):
        make_clf(tiny_llama, n_shots=8).fit(long_texts, LABEL_LISTS)
    make_clf(tiny_llama, n_shots=8, max_text_tokens=40).fit(long_texts, LABEL_LISTS)
