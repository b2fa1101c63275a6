"""A model changed in place, or a broken checkpoint: re-fingerprinted or one clear error
(``backends._load``)."""

import json

import numpy as np
import pytest
import torch

from sklearn_llm_multilabel import (
    clear_memory_cache,
    load_model,
    register_model,
)
from sklearn_llm_multilabel.cli import main
from sklearn_llm_multilabel.exceptions import (
    ModelLoadError,
    NoLabelStepWarning,
)
from sklearn_llm_multilabel.testing import make_tiny_model

from .conftest import LABEL_LISTS, TEXTS, make_clf

pytestmark = pytest.mark.filterwarnings(f"ignore::{NoLabelStepWarning.__module__}.NoLabelStepWarning")



# ------------------------------------------------------ model changed in place
def test_registered_model_changed_in_place_is_re_fingerprinted(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "llama", seed=5)
    register_model("tiny-trained", model, tiny_tokenizer)
    clf = make_clf("tiny-trained").fit(TEXTS, LABEL_LISTS)
    before = clf.predict_proba(TEXTS)
    with torch.no_grad():  # an optimiser step changes every weight in place
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = clf.predict_proba(TEXTS)
    reference_model = make_tiny_model(tiny_tokenizer, "llama", seed=5)
    reference_model.load_state_dict(model.state_dict())
    register_model("tiny-reference", reference_model, tiny_tokenizer)
    clear_memory_cache()
    expected = make_clf("tiny-reference").fit(TEXTS, LABEL_LISTS).predict_proba(TEXTS)
    np.testing.assert_allclose(after, expected, atol=1e-6)
    assert not np.allclose(after, before, atol=1e-4)


def test_writes_through_data_are_detected_too(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "llama", seed=6)
    register_model("tiny-data-write", model, tiny_tokenizer)
    first = load_model("tiny-data-write", device="cpu").fingerprint
    model.lm_head.weight.data.mul_(1.5)  # bypasses the version counter
    assert load_model("tiny-data-write", device="cpu").fingerprint != first


def test_model_with_explicit_fingerprint_changed_in_place_is_refused(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "llama", seed=7)
    register_model("tiny-fixed-fp", model, tiny_tokenizer, fingerprint="v1")
    load_model("tiny-fixed-fp", device="cpu")
    with torch.no_grad():
        model.lm_head.weight.mul_(2)
    with pytest.raises(ModelLoadError, match="changed in place.*register_model again"):
        load_model("tiny-fixed-fp", device="cpu")


# ---------------------------------------------------------- broken checkpoints
@pytest.fixture
def checkpoint(tmp_path, tiny_tokenizer):
    path = tmp_path / "ckpt"
    make_tiny_model(tiny_tokenizer, "llama", seed=1).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def _truncate_weights(path):
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])


def _mismatched_config(path):
    config = json.loads((path / "config.json").read_text())
    config["hidden_size"] = 32
    (path / "config.json").write_text(json.dumps(config))


def _missing_tokenizer(path):
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (path / name).unlink(missing_ok=True)


@pytest.mark.parametrize("damage", [_truncate_weights, _mismatched_config, _missing_tokenizer])
def test_broken_checkpoint_is_one_library_error_naming_the_path(checkpoint, damage, capsys, tmp_path):
    damage(checkpoint)
    with pytest.raises(ModelLoadError, match=str(checkpoint)):
        load_model(str(checkpoint), device="cpu")
    table = tmp_path / "t.csv"
    table.write_text("text,weather,sports\n" + "".join(f"{t} {i},1,0\n" for i, t in
                                                        enumerate(TEXTS * 2)))
    status = main(["evaluate", str(table), "--format", "csv", "--model", str(checkpoint),
                   "--n-shots", "2", "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()  # transformers' loading bar may come first
    errors = [line for line in err.splitlines() if line.startswith("sklml: error:")]
    assert status == 2 and len(errors) == 1 and errors[0].startswith("sklml: error:")
    assert str(checkpoint) in errors[0] and "Traceback" not in err
