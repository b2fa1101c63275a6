"""Shared fixtures: tiny offline models registered under string specs."""

import pytest
import torch

from sklearn_llm_multilabel import clear_memory_cache, register_model, reset_scoring_stats
from sklearn_llm_multilabel.testing import make_tiny_model, make_tiny_tokenizer

TEXTS = [
    "the rain fell all day",
    "the team won the game",
    "rain stopped the game in the second half",
    "sunny skies",
    "the minister announced a vote on the new law",
    "storm and a late goal",
    "snow",
    "the court ruled on the election law after the storm",
]
LABEL_LISTS = [
    ["weather"], ["sports"], ["weather", "sports"], ["weather"],
    ["politics"], ["weather", "sports"], ["weather"], ["politics", "weather"],
]
LABELS = ["weather", "sports", "politics"]


#: test modules that need more than the tiny in-process models: the fast loop
#: (``make test-fast``: ``-m "not slow and not ray and not lora"``) leaves them out
HEAVY_MODULES = {
    "test_end_to_end": "slow",  # the real embedded model
    "test_distributed": "ray",  # a local Ray cluster
    "test_finetune": "lora",  # LoRA training with peft
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item, "module", None)
        mark = HEAVY_MODULES.get(module.__name__.rsplit(".", 1)[-1]) if module else None
        if mark is not None:
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session", autouse=True)
def _converted_models(tmp_path_factory):
    """GGUF conversions go to a folder of the session (never the user's cache); the processes
    a test starts inherit it."""
    import os

    previous = os.environ.get("SKLML_MODEL_CACHE")
    os.environ["SKLML_MODEL_CACHE"] = str(tmp_path_factory.mktemp("converted-models"))
    yield
    if previous is None:
        os.environ.pop("SKLML_MODEL_CACHE", None)
    else:
        os.environ["SKLML_MODEL_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "llama", seed=0)
    register_model("tiny-llama", model, tiny_tokenizer)
    return "tiny-llama"


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "gpt2", seed=0)
    register_model("tiny-gpt2", model, tiny_tokenizer)
    return "tiny-gpt2"


@pytest.fixture(autouse=True)
def _fresh_caches(tmp_path, monkeypatch):
    """Every test starts with an empty in-process cache and zeroed counters, and the CLI's
    default step cache is a folder of the test's own."""
    monkeypatch.setenv("SKLML_CACHE_DIR", str(tmp_path / "sklml-default-cache"))
    clear_memory_cache()
    reset_scoring_stats()
    torch.manual_seed(0)
    yield


def saved_checkpoint_estimator(spec, folder, **params):
    """An estimator fitted on the fixture texts over ``spec`` saved as a checkpoint folder, so
    that a saved estimator (the CLI's) reloads it in any process."""
    import warnings

    from sklearn_llm_multilabel import LLMMultiLabelClassifier
    from sklearn_llm_multilabel.backends._load import load_model

    load_model(spec, device="cpu").model.save_pretrained(folder)
    load_model(spec, device="cpu").tokenizer.save_pretrained(folder)
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LLMMultiLabelClassifier(str(folder), **params).fit(TEXTS, LABEL_LISTS)


def predict_from_store(estimator_file, source, store, out) -> list[dict]:
    """``sklml predict --store`` from a fresh memory cache; asserts it scores no text and
    returns the rows it wrote."""
    import csv
    import warnings

    from sklearn_llm_multilabel import get_scoring_stats
    from sklearn_llm_multilabel.cli import main

    clear_memory_cache()
    before = get_scoring_stats()["texts_scored"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", "--estimator", str(estimator_file), "--input", str(source),
                     "--store", str(store), "--output", str(out)]) == 0
    assert get_scoring_stats()["texts_scored"] == before  # every record found in the store
    with open(out, newline="") as fh:
        return list(csv.DictReader(fh))


def make_clf(spec, **params):
    """A small estimator on ``spec`` for the reliability tests (2 shots, short decoding)."""
    from sklearn_llm_multilabel import LLMMultiLabelClassifier

    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, "batch_size": 3,
              **params}
    return LLMMultiLabelClassifier(model=spec, **params)


def texts_scored() -> int:
    from sklearn_llm_multilabel import get_scoring_stats

    return get_scoring_stats()["texts_scored"]


def proportions():
    """Annotator proportions of the fixture texts (their labels at 0.67, noise of 1/3)."""
    import numpy as np

    rng = np.random.default_rng(0)
    Y = np.array([[label in row for label in LABELS] for row in LABEL_LISTS], dtype=float)
    return np.clip(Y * 0.67 + rng.choice([0, 1 / 3], size=Y.shape), 0, 1)
