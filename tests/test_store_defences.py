"""Hostile stores: both layouts refuse, skip or heal what they cannot trust, and say so."""

import multiprocessing
import os
import warnings

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from sklearn_llm_multilabel import (  # noqa: E402
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
)
from sklearn_llm_multilabel.cli import main  # noqa: E402
from sklearn_llm_multilabel.exceptions import CacheWarning, StoreError  # noqa: E402
from sklearn_llm_multilabel.scoring import open_store  # noqa: E402
from sklearn_llm_multilabel.store._files import MARKER as FILES_MARKER  # noqa: E402
from sklearn_llm_multilabel.store._files import StepCache  # noqa: E402
from sklearn_llm_multilabel.store._records import AdapterRecord  # noqa: E402
from sklearn_llm_multilabel.store._sharded import MARKER as SHARDED_MARKER  # noqa: E402
from sklearn_llm_multilabel.store._sharded import ShardedStore  # noqa: E402

from .conftest import LABEL_LISTS, TEXTS  # noqa: E402
from .test_store import key_of, step_record  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning",
    "ignore::sklearn_llm_multilabel.exceptions.IdenticalGenerationsWarning",
    "ignore::sklearn_llm_multilabel.exceptions.UnknownLabelWarning",
)


def fitted(spec, **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    return LLMMultiLabelClassifier(spec, **params).fit(TEXTS, LABEL_LISTS)


# ------------------------------------------------------------ one layout decision
def _open(args):
    folder, how = args
    if how == "sharded":
        open_store(folder)
    else:
        StepCache(folder)
    return (sorted(os.listdir(folder)))


def test_concurrent_openers_of_a_new_folder_agree_on_one_layout(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        for trial in range(6):
            folder = tmp_path / f"store{trial}"
            pool.map(_open, [(str(folder), how) for how in ("sharded", "files") * 3])
            markers = {FILES_MARKER, SHARDED_MARKER} & set(os.listdir(folder))
            assert len(markers) == 1, (trial, markers)


def test_a_folder_with_both_markers_is_a_clear_error(tmp_path):
    ShardedStore(tmp_path)
    (tmp_path / FILES_MARKER).write_text("{}")
    with pytest.raises(StoreError, match=rf"{tmp_path}: holds the markers of both layouts"):
        StepCache(tmp_path)


# ------------------------------------------------------------------ damaged markers
@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '"text"'])
def test_a_damaged_marker_is_one_error_naming_the_file(tmp_path, content, capsys):
    ShardedStore(tmp_path)
    (tmp_path / SHARDED_MARKER).write_text(content)
    with pytest.raises(StoreError, match=rf"{tmp_path / SHARDED_MARKER}: damaged store marker"):
        StepCache(tmp_path)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged store marker" in err


# ------------------------------------------------------------------ foreign shards
def _write_foreign(store, name, table):
    pq.write_table(table, store / "shards" / name)


def test_foreign_parquet_files_are_skipped_with_one_warning_and_counted(tiny_llama, tmp_path):
    clf = fitted(tiny_llama, cache_dir=tmp_path / "s")
    open_store(tmp_path / "s")
    expected = clf.predict_proba(TEXTS)
    store = tmp_path / "s"
    _write_foreign(store, "export.parquet", pa.table({"text": ["a"], "p": [0.5]}))
    _write_foreign(store, "old.parquet", pa.table({"key": [key_of(1)], "kind": ["StepRecord"]}))
    (store / "shards" / "garbage.parquet").write_bytes(b"PAR1 not really")
    clear_memory_cache()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = clf.predict_proba(TEXTS)
    np.testing.assert_array_equal(got, expected)
    assert get_scoring_stats()["texts_scored"] == len(TEXTS)  # scored once, at the first call
    messages = [str(w.message) for w in seen if w.category is CacheWarning]
    assert len(messages) == 1 and "export.parquet" in messages[0]
    assert "2 more CacheWarning" in messages[0]
    info = ShardedStore(store, create=False).info()
    assert sorted(info.foreign) == ["shards/export.parquet", "shards/garbage.parquet",
                                    "shards/old.parquet"]


# -------------------------------------------------------------------- bounds
def test_a_shard_of_too_many_keys_is_refused_from_its_metadata(tmp_path, monkeypatch):
    from sklearn_llm_multilabel.store import _sharded as _store

    store = ShardedStore(tmp_path)
    store.put_many([key_of(i) for i in range(3)], [step_record(i) for i in range(3)])
    monkeypatch.setattr(_store, "MAX_SHARD_ROWS", 100)
    keys = [key_of(i) for i in range(1000, 1500)]
    pq.write_table(pa.table({"key": keys, "kind": ["StepRecord"] * 500, "meta": ["{}"] * 500}),
                   tmp_path / "shards" / "many.parquet")
    reader = ShardedStore(tmp_path, create=False)
    with pytest.warns(CacheWarning, match=r"many.parquet .*500 rows, more than the 100"):
        assert reader.contains([key_of(0), keys[0]]).tolist() == [True, False]
    # the writer splits a large batch into shards within the bound
    reader.put_many(keys[:250], [step_record(i) for i in range(250)])
    assert all(pq.read_metadata(p).num_rows <= 100 for p in (tmp_path / "shards").glob("*")
               if p.name != "many.parquet")


def test_a_small_shard_that_decodes_to_a_huge_one_is_refused_before_decoding(tmp_path,
                                                                             monkeypatch):
    from sklearn_llm_multilabel.store import _sharded as _store

    store = ShardedStore(tmp_path)
    monkeypatch.setattr(_store, "MAX_SHARD_BYTES", 2**20)
    big = np.zeros(4 * 2**20, dtype=np.uint8).tobytes()  # 4 MiB of zeros: kilobytes compressed
    pq.write_table(pa.table({"key": [key_of(7)], "kind": ["StepRecord"], "meta": ["{}"],
                             "a.hidden": [big]}), tmp_path / "shards" / "bomb.parquet",
                   compression="zstd")
    assert (tmp_path / "shards" / "bomb.parquet").stat().st_size < 2**16
    with pytest.warns(CacheWarning, match=r"bomb.parquet .*bytes uncompressed, more than"):
        assert store.get_many([key_of(7)]) == [None]


# ------------------------------------------------------------- writes that fail
def test_a_full_disk_warns_once_and_returns_the_probabilities(tiny_llama, tmp_path, monkeypatch):
    store = tmp_path / "s"
    open_store(store)
    clf = fitted(tiny_llama, cache_dir=store)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ShardedStore, "put_many", full)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        proba = clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3)
    cache_warnings = [w for w in seen if w.category is CacheWarning]
    assert len(cache_warnings) == 1 and "No space left on device" in str(cache_warnings[0].message)


# ------------------------------------------------------------------ healing
def test_a_damaged_duplicate_is_superseded_by_its_healthy_copy(tmp_path):
    store = ShardedStore(tmp_path)
    healthy = step_record(3)
    bad = step_record(3)
    bad.position_scores[0, 0] = np.nan
    store.put_many([key_of(3)], [bad])
    store.put_many([key_of(3)], [healthy])
    for _ in range(2):  # a damaged copy never hides the healthy one, in any order of the shards
        reader = ShardedStore(tmp_path, create=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            got = reader.get_many([key_of(3)])[0]
        assert got is not None
        np.testing.assert_array_equal(got.position_scores, healthy.position_scores)
    assert len(list((tmp_path / "shards").glob("*.parquet"))) == 2  # nothing written again


# ------------------------------------------------------------------ adapters
def test_a_large_adapter_is_stored_beside_the_records_and_read_back(tmp_path, monkeypatch):
    from sklearn_llm_multilabel.store import _files as _cache

    monkeypatch.setattr(_cache, "MAX_ENTRY_BYTES", 2**16)  # records stay small; adapters may not
    weights = {f"layer.{i}.lora_A.weight": np.full((64, 128), i, np.float32) for i in range(4)}
    record = AdapterRecord(weights=weights, losses=np.array([1.0, 0.5]), n_cut=0)
    key = key_of(42)
    for layout in ("files", "sharded"):
        folder = tmp_path / layout
        cache = StepCache(folder) if layout == "files" else open_store(folder)
        cache.put(key, record)
        clear_memory_cache()
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)
            again = StepCache(folder).get(key, kind=AdapterRecord)
        assert again is not None and list(again.weights) == list(weights)
        np.testing.assert_array_equal(again.weights["layer.3.lora_A.weight"], weights[
            "layer.3.lora_A.weight"])
        assert (folder / "adapters" / f"{key}.safetensors").is_file()
        info = StepCache(folder).info()
        assert f"adapters/{key}.safetensors" in info.entries and not info.foreign
        assert StepCache(folder).clear()[0] >= 1
        assert not (folder / "adapters" / f"{key}.safetensors").exists()


# -------------------------------------------------------- a store of other keys
def test_a_store_of_other_keys_says_so_instead_of_silently_rescoring(tiny_llama, tmp_path,
                                                                     capsys):
    import csv

    from sklearn_llm_multilabel.persistence import save_estimator

    from .conftest import saved_checkpoint_estimator

    filler = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt")
    other = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt", random_state=5)
    assert other.demonstrations_ != filler.demonstrations_  # another prompt: other keys
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in TEXTS]])
    store = tmp_path / "s"
    save_estimator(filler, tmp_path / "filler.skops")
    save_estimator(other, tmp_path / "other.skops")
    assert main(["score", "--estimator", str(tmp_path / "filler.skops"), "--input", str(source),
                 "--output", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", "--estimator", str(tmp_path / "other.skops"), "--input", str(source),
                 "--store", str(store), "--output", str(tmp_path / "p.csv")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "CacheWarning" in line]
    assert len(err) == 1 and "none of the 8 texts' records are in" in err[0]
    assert "holds 8 records under other keys" in err[0] and "another prompt fingerprint" in err[0]
    capsys.readouterr()
    assert main(["predict", "--estimator", str(tmp_path / "filler.skops"), "--input", str(source),
                 "--store", str(store), "--output", str(tmp_path / "p.csv")]) == 0
    assert "CacheWarning" not in capsys.readouterr().err  # the filler's own store: no word
