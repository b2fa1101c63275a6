"""The one-file-per-text store's folder and entries: refused, cleaned or recomputed, never
trusted blindly (``store._files``)."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sklearn_llm_multilabel import (
    clear_memory_cache,
)
from sklearn_llm_multilabel.cli import main
from sklearn_llm_multilabel.exceptions import (
    CacheWarning,
    NoLabelStepWarning,
)
from sklearn_llm_multilabel.store._files import MARKER, StepCache

from .conftest import LABEL_LISTS, LABELS, TEXTS, make_clf, texts_scored

pytestmark = pytest.mark.filterwarnings(f"ignore::{NoLabelStepWarning.__module__}.NoLabelStepWarning")



# --------------------------------------------------------------- cache folder
def _filled_cache(tiny_llama, root):
    clf = make_clf(tiny_llama, cache_dir=root).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:4])
    return clf


def test_cache_clear_removes_only_its_entries_and_orphans(tiny_llama, tmp_path, capsys):
    root = tmp_path / "cache"
    _filled_cache(tiny_llama, root)
    assert (root / MARKER).is_file()
    some_entry = sorted(root.rglob("*.npz"))[0]
    own = some_entry.parent / "my_notes.npz"  # a user's file in a cache subfolder
    own.write_bytes(b"mine")
    (root / "README.txt").write_text("mine too")
    orphan = some_entry.parent / ".tmp-abc123.npz"
    orphan.write_bytes(b"half")
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 cached texts" in out and "1 orphaned" in out and "2 other files" in out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "removed 4 cached texts and 1 orphaned" in capsys.readouterr().out
    assert own.read_bytes() == b"mine" and (root / "README.txt").is_file()
    assert not orphan.exists() and not [p for p in root.rglob("*.npz") if p != own]


def test_cache_commands_refuse_a_folder_that_is_not_a_cache(tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "ab").mkdir(parents=True)
    precious = folder / "ab" / ("ab" + "0" * 62 + ".npz")  # looks like an entry
    precious.write_bytes(b"holiday")
    assert main(["cache", "clear", "--cache-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a step cache" in err
    assert precious.read_bytes() == b"holiday"


def test_estimator_refuses_a_cache_dir_holding_other_files(tiny_llama, tmp_path):
    (tmp_path / "thesis.tex").write_text("...")
    with pytest.raises(ValueError, match="is not a step cache of this library"):
        make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)


def test_a_cache_dir_another_process_is_creating_is_accepted(tiny_llama, tmp_path):
    # Another process has made the folder and is writing the marker (to a temporary
    # that it renames): that temporary is the library's own, not a foreign file.
    tmp_path.joinpath(".tmp-k2j4h1.json").write_text("{")
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:2])
    assert (tmp_path / MARKER).is_file() and len(list(tmp_path.rglob("*.npz"))) == 2
    contents = StepCache(tmp_path, create=False).info()
    assert contents.orphans == [".tmp-k2j4h1.json"] and contents.foreign == []


def test_cache_dir_that_is_a_file_fails_in_fit(tiny_llama, tmp_path):
    path = tmp_path / "cache"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        make_clf(tiny_llama, cache_dir=path).fit(TEXTS, LABEL_LISTS)


def test_orphaned_temporaries_are_cleaned_when_a_cache_is_opened(tiny_llama, tmp_path):
    from sklearn_llm_multilabel.store import _files as _cache

    root = tmp_path / "cache"
    _filled_cache(tiny_llama, root)
    sub = sorted(root.rglob("*.npz"))[0].parent
    old, fresh = sub / ".tmp-old.npz", sub / ".tmp-new.npz"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (0, 0))
    _cache._OPENED.clear()  # a new process
    StepCache(root)
    assert not old.exists() and fresh.exists()  # a concurrent writer's file is left alone


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root ignores permissions")
def test_read_only_cache_dir_warns_once_and_keeps_results(tiny_llama, tmp_path):
    root = tmp_path / "cache"
    StepCache(root)
    root.chmod(0o500)
    try:
        clf = make_clf(tiny_llama, cache_dir=root).fit(TEXTS, LABEL_LISTS)
        with pytest.warns(CacheWarning, match="cannot be written") as record:
            proba = clf.predict_proba(TEXTS)
        assert len([w for w in record if issubclass(w.category, CacheWarning)]) == 1
        assert proba.shape == (len(TEXTS), len(LABELS))
    finally:
        root.chmod(0o700)


def test_read_only_cache_dir_simulated(tiny_llama, tmp_path, monkeypatch):
    """The same case as above, by making every write fail (tests may run as root)."""
    from sklearn_llm_multilabel.store import _files as _cache

    root = tmp_path / "cache"
    clf = make_clf(tiny_llama, cache_dir=root).fit(TEXTS, LABEL_LISTS)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_cache, "atomic_write", refuse)
    expected = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS).predict_proba(TEXTS)
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="cannot be written") as record:
        proba = clf.predict_proba(TEXTS)
    assert len([w for w in record if issubclass(w.category, CacheWarning)]) == 1
    np.testing.assert_allclose(proba, expected)


def test_results_in_memory_are_written_to_a_cache_dir_set_later(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS)
    clf.set_params(cache_dir=tmp_path / "later").predict_proba(TEXTS)
    assert len(list((tmp_path / "later").rglob("*.npz"))) == len(TEXTS)
    clear_memory_cache()
    before = texts_scored()
    np.testing.assert_allclose(clf.predict_proba(TEXTS), expected, atol=1e-6)
    assert texts_scored() == before


# ------------------------------------------------------ crafted cache entries
def _rewrite(path: Path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.array(data[name]) for name in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    change(arrays, meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _steps_out_of_range(arrays, meta):
    arrays["step_positions"] = np.array([0, 10_000], dtype=np.int64)
    arrays["step_labels"] = np.array([0, 1], dtype=np.int64)


def _label_out_of_range(arrays, meta):
    arrays["step_positions"] = np.array([0], dtype=np.int64)
    arrays["step_labels"] = np.array([99], dtype=np.int64)
    meta["n_valid"] = max(meta["n_valid"], 1)


def _non_finite(arrays, meta):
    arrays["position_scores"] = np.full_like(arrays["position_scores"], np.nan)


def _other_kind(arrays, meta):
    meta["kind"] = "BreakdownRecord"
    arrays["answer_scores"] = np.zeros((3, 2), dtype=np.float32)


def _wrong_label_count(arrays, meta):
    arrays["position_scores"] = np.zeros((len(arrays["generated_ids"]), 9), dtype=np.float32)


def _wrong_types(arrays, meta):
    meta["parsed"] = {"not": "a list"}


@pytest.mark.parametrize("change", [_steps_out_of_range, _label_out_of_range, _non_finite,
                                    _other_kind, _wrong_label_count, _wrong_types])
def test_crafted_entries_are_warned_about_and_recomputed(tiny_llama, tmp_path, change):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS[:2])
    path = sorted(tmp_path.rglob("*.npz"))[0]
    _rewrite(path, change)
    clear_memory_cache()
    before = texts_scored()
    with pytest.warns(CacheWarning, match=str(path.name)):
        again = clf.predict_proba(TEXTS[:2])
    assert texts_scored() == before + 1
    np.testing.assert_allclose(again, expected, atol=1e-6)


def test_deeply_nested_metadata_is_rejected(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:1])
    [path] = tmp_path.rglob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.array(data[name]) for name in data.files}
    arrays["meta"] = np.frombuffer(("[" * 100_000 + "]" * 100_000).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="unreadable"):
        clf.predict_proba(TEXTS[:1])


def test_decompression_bomb_is_rejected_before_decompressing(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:1])
    [path] = tmp_path.rglob("*.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.npy", b"\0" * (300 * 2**20))  # 300 MB of zeros, ~300 kB on disk
    assert path.stat().st_size < 2 * 2**20
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="decompress"):
        clf.predict_proba(TEXTS[:1])
