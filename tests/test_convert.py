"""GGUF conversions: written once, read back exactly, redone when damaged, never stale."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_llm_multilabel._keys import file_digest
from sklearn_llm_multilabel.backends import _convert
from sklearn_llm_multilabel.backends._convert import META, find_conversion, write_conversion
from sklearn_llm_multilabel.exceptions import PerformanceWarning
from sklearn_llm_multilabel.testing import make_tiny_model


@pytest.fixture
def gguf(tmp_path, monkeypatch):
    """A stand-in GGUF file (only its content names the conversion) and a cache."""
    monkeypatch.setenv("SKLML_MODEL_CACHE", str(tmp_path / "converted"))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    return path


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits.numpy()


def test_a_conversion_is_read_back_exactly(gguf, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = make_tiny_model(tiny_tokenizer, seed=3)
    assert find_conversion("ab" * 32, torch.float32) is None
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    found = find_conversion("ab" * 32, torch.float32)
    assert found == folder
    again = AutoModelForCausalLM.from_pretrained(found, dtype=torch.float32).eval()
    ids = tiny_tokenizer.encode("the rain fell on the game", add_special_tokens=False)
    np.testing.assert_array_equal(logits(again, ids), logits(model, ids))
    tok = AutoTokenizer.from_pretrained(found)
    assert tok("rain, sports")["input_ids"] == tiny_tokenizer("rain, sports")["input_ids"]
    assert find_conversion("ab" * 32, torch.bfloat16) is None  # another dtype, another folder
    assert find_conversion("cd" * 32, torch.float32) is None  # another content, another folder


def test_a_damaged_or_partial_conversion_is_removed_and_redone(gguf, tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, seed=3)
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert find_conversion("ab" * 32, torch.float32) is None and not folder.exists()
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    (folder / META).unlink()  # cut before its metadata was written
    assert find_conversion("ab" * 32, torch.float32) is None and not folder.exists()


def _zero_in_place(path, start, length):
    """Overwrite bytes in place, then put the size and modification time back."""
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(bytes(length))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_weights_damaged_in_place_are_never_read(gguf, tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, seed=3)
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    assert find_conversion("ab" * 32, torch.float32) == folder  # digests memoised now
    weights = folder / "model.safetensors"
    _zero_in_place(weights, weights.stat().st_size - 4096, 4096)  # the header still reads
    assert find_conversion("ab" * 32, torch.float32) is None and not folder.exists()
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    _zero_in_place(folder / "tokenizer.json", 0, 1)
    assert find_conversion("ab" * 32, torch.float32) is None and not folder.exists()


def test_a_gguf_swapped_in_place_is_another_model(gguf):
    """Another digest (the fingerprint), and another stamp (the loaded-model registry's key,
    and the key recipe no longer holds)."""
    from sklearn_llm_multilabel._keys import file_stamps

    before, stamps = file_digest(gguf), file_stamps([gguf])
    _zero_in_place(gguf, 0, 4)  # same size and modification time, other content
    assert file_digest(gguf) != before and file_stamps([gguf]) != stamps


def test_a_changed_file_never_reads_a_stale_conversion(gguf, tiny_tokenizer):
    write_conversion(gguf, make_tiny_model(tiny_tokenizer), tiny_tokenizer, torch.float32,
                     file_digest(gguf))
    gguf.write_bytes(b"GGUF" + bytes(99) + b"x")  # same size
    assert find_conversion(file_digest(gguf), torch.float32) is None


def test_a_conversion_killed_mid_write_is_counted_and_pruned(gguf, tiny_tokenizer, capsys):
    from sklearn_llm_multilabel.cli import main
    from sklearn_llm_multilabel.store._files import StepCache

    root = _convert.converted_root()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = root / f".tmp-{'a' * 64}-{dead}-{'0' * 32}"
    orphan.mkdir(parents=True)
    (orphan / "model.safetensors").write_bytes(bytes(3 * 2**20))
    running = root / f".tmp-{'b' * 64}-{os.getpid()}-{'0' * 32}"  # this process is writing it
    running.mkdir()
    StepCache(gguf.parent / "steps")
    assert main(["cache", "info", "--cache-dir", str(gguf.parent / "steps")]) == 0
    assert "1 unfinished (3.0 MiB: a conversion killed mid-write)" in capsys.readouterr().out
    assert main(["cache", "prune"]) == 0
    assert "and 1 unfinished conversion(s), 3.0 MiB" in capsys.readouterr().out
    assert not orphan.exists() and running.exists()


def test_an_unwritable_cache_warns_once_and_changes_nothing_else(gguf, tiny_tokenizer,
                                                                 monkeypatch):
    blocker = gguf.parent / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SKLML_MODEL_CACHE", str(blocker / "converted"))
    model = make_tiny_model(tiny_tokenizer)
    with pytest.warns(PerformanceWarning, match="cannot be written.*SKLML_MODEL_CACHE"):
        assert write_conversion(gguf, model, tiny_tokenizer, torch.float32, "0" * 64) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        assert write_conversion(gguf, model, tiny_tokenizer, torch.float32, "0" * 64) is None


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SKLML_MODEL_CACHE", str(tmp_path / "x"))
    assert _convert.converted_root() == tmp_path / "x"
    monkeypatch.delenv("SKLML_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _convert.converted_root() == Path(tmp_path / "xdg" / "sklearn_llm_multilabel-models")


def test_tied_weights_are_stored_under_the_name_that_loads_without_initialising(
        gguf, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    config = make_tiny_model(tiny_tokenizer).config.to_dict()
    torch.manual_seed(5)
    model = LlamaForCausalLM(LlamaConfig(**{**config, "tie_word_embeddings": True})).eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    folder = write_conversion(gguf, model, tiny_tokenizer, torch.float32, "ab" * 32)
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as fh:
        names = set(fh.keys())
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names
    again, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                       output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert again.lm_head.weight.data_ptr() == again.model.embed_tokens.weight.data_ptr()
    ids = tiny_tokenizer.encode("the rain fell on the game", add_special_tokens=False)
    np.testing.assert_array_equal(logits(again.eval(), ids), logits(model, ids))


def test_stale_conversions_are_shown_and_pruned_and_the_current_one_kept(gguf, tiny_tokenizer,
                                                                         capsys):
    from sklearn_llm_multilabel.cli import main

    model = make_tiny_model(tiny_tokenizer)
    old = write_conversion(gguf, model, tiny_tokenizer, torch.float32, file_digest(gguf))
    gguf.write_bytes(b"GGUF" + bytes(200))  # the file changed
    current = write_conversion(gguf, model, tiny_tokenizer, torch.float32, file_digest(gguf))
    gone = gguf.parent / "gone.gguf"
    gone.write_bytes(b"GGUF" + bytes(10))
    of_gone = write_conversion(gone, model, tiny_tokenizer, torch.float32, file_digest(gone))
    gone.unlink()
    assert len({old, current, of_gone}) == 3
    assert _convert.stale_conversions([old, current, of_gone]) == [old, of_gone]
    from sklearn_llm_multilabel.store._files import StepCache

    steps = gguf.parent / "steps"
    StepCache(steps)  # an empty step cache
    assert main(["cache", "info", "--cache-dir", str(steps)]) == 0
    out = capsys.readouterr().out
    assert "3 converted GGUF model(s)" in out and "2 stale" in out
    assert main(["cache", "prune"]) == 0
    assert "removed 2 stale converted GGUF model(s)" in capsys.readouterr().out
    assert not old.exists() and not of_gone.exists()
    assert find_conversion(file_digest(gguf), torch.float32) == current
