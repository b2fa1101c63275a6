"""A prediction served entirely from the step cache never reads the model's weights."""

import numpy as np
import pytest

from sklearn_llm_multilabel import (
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
)
from sklearn_llm_multilabel.backends._load import clear_model_registry, load_model
from sklearn_llm_multilabel.exceptions import ModelLoadError

from .conftest import LABEL_LISTS, TEXTS

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning",
    "ignore::sklearn_llm_multilabel.exceptions.IdenticalGenerationsWarning",
)
PARAMS = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6}


@pytest.fixture
def checkpoint(tiny_llama, tiny_tokenizer, tmp_path):
    folder = tmp_path / "ckpt"
    load_model(tiny_llama, device="cpu").model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    clear_model_registry()
    yield str(folder)
    clear_model_registry()


def test_cached_predict_reads_no_weights_and_returns_the_same(checkpoint, tmp_path):
    cache = tmp_path / "steps"
    clf = LLMMultiLabelClassifier(checkpoint, cache_dir=cache, **PARAMS).fit(TEXTS, LABEL_LISTS)
    assert get_scoring_stats()["weights_loaded"] == 0  # fit needs the tokenizer only
    proba = clf.predict_proba(TEXTS)
    assert get_scoring_stats()["weights_loaded"] == 1
    clear_model_registry()  # as in a new process
    clear_memory_cache()
    again = LLMMultiLabelClassifier(checkpoint, cache_dir=cache, **PARAMS).fit(TEXTS, LABEL_LISTS)
    np.testing.assert_array_equal(again.predict_proba(TEXTS), proba)
    again.set_params(aggregation="hard").predict(TEXTS)
    stats = get_scoring_stats()
    assert stats["weights_loaded"] == 1 and stats["texts_scored"] == len(TEXTS)
    assert not load_model(checkpoint, device="cpu", lazy=True).weights_loaded
    again.predict_proba(["a text the cache has not seen"])  # one new text: now they are read
    assert get_scoring_stats()["weights_loaded"] == 2
    assert load_model(checkpoint, device="cpu", lazy=True).weights_loaded


def test_lazy_and_eager_loads_give_the_same_fingerprint_and_scores(checkpoint):
    lazy = load_model(checkpoint, device="cpu", lazy=True)
    fingerprint = lazy.fingerprint
    assert not lazy.weights_loaded and lazy.config.hidden_size == 16
    clf = LLMMultiLabelClassifier(checkpoint, **PARAMS).fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba(TEXTS)
    clear_model_registry()
    clear_memory_cache()
    eager = load_model(checkpoint, device="cpu")
    assert eager.weights_loaded and eager.fingerprint == fingerprint
    np.testing.assert_array_equal(clf.predict_proba(TEXTS), proba)


def test_broken_weights_fail_in_fit_and_at_first_scoring_naming_the_path(checkpoint):
    weights = f"{checkpoint}/model.safetensors"
    clf = LLMMultiLabelClassifier(checkpoint, **PARAMS).fit(TEXTS, LABEL_LISTS)
    with open(weights, "r+b") as fh:  # damaged after fit: the first scoring says so
        fh.truncate(200)
    with pytest.raises(ModelLoadError, match=checkpoint):
        clf.predict_proba(TEXTS)
    clear_model_registry()
    with pytest.raises(ModelLoadError, match=f"{weights} is incomplete or damaged"):
        LLMMultiLabelClassifier(checkpoint, **PARAMS).fit(TEXTS, LABEL_LISTS)  # before: in fit
