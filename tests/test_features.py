import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from sklearn_llm_multilabel import (
    DistributionCalibrator,
    LLMHiddenStateFeatures,
    LLMMultiLabelClassifier,
    get_scoring_stats,
)

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning"
)


def llm(spec):
    return LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=2, max_new_tokens=5,
                                   show_progress=False)


def test_features_are_the_engine_hidden_states_and_share_the_cache(tiny_llama):
    clf = llm(tiny_llama).fit(TEXTS, LABEL_LISTS)
    expected = clf.first_step_hidden_states(TEXTS)
    feats = LLMHiddenStateFeatures(llm(tiny_llama)).fit(TEXTS, LABEL_LISTS)
    assert len(feats.get_feature_names_out()) == expected.shape[1]  # known after fit
    np.testing.assert_array_equal(feats.transform(TEXTS), expected)
    assert get_scoring_stats()["texts_scored"] == len(TEXTS)  # same prompt, same cache
    assert feats.get_feature_names_out()[:2].tolist() == ["hidden0", "hidden1"]
    assert clone(feats).get_params()["classifier"].get_params() == llm(tiny_llama).get_params()


def test_linear_probe_pipeline(tiny_llama):
    Y = np.array([[lab in row for lab in LABELS] for row in LABEL_LISTS], float)
    probe = make_pipeline(LLMHiddenStateFeatures(llm(tiny_llama)),
                          DistributionCalibrator(method="linear", n_components=4))
    proba = probe.fit(TEXTS, Y).predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3) and ((proba > 0) & (proba < 1)).all()
    params = probe.get_params()
    assert "llmhiddenstatefeatures__classifier__n_shots" in params
