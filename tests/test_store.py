"""The sharded Parquet store: exact round trips, concurrent writers, damaged shards."""

import hashlib
import multiprocessing
import warnings

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from sklearn_llm_multilabel import (  # noqa: E402
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
)
from sklearn_llm_multilabel._cache import StepCache, check_cache_dir  # noqa: E402
from sklearn_llm_multilabel._store import MARKER, ShardedStore  # noqa: E402
from sklearn_llm_multilabel.backends._base import (  # noqa: E402
    AdapterRecord,
    BreakdownRecord,
    StepRecord,
)
from sklearn_llm_multilabel.exceptions import CacheWarning  # noqa: E402

from .conftest import LABEL_LISTS, TEXTS  # noqa: E402


def key_of(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def step_record(i: int, hidden: int = 8) -> StepRecord:
    rng = np.random.default_rng(i)
    n = 2 + i % 3
    return StepRecord(
        position_scores=rng.normal(size=(n, 4)).astype(np.float32),
        generated_ids=rng.integers(0, 100, size=n), n_valid=n,
        step_positions=np.arange(min(2, n)), step_labels=np.array([1, 0])[: min(2, n)],
        label_mass=rng.random(n).astype(np.float32),
        hidden=rng.normal(size=hidden).astype(np.float32),
        text=f"text {i}", parsed=("a",), unknown=())


def assert_same(a, b):
    assert type(a) is type(b)
    arrays_a, meta_a = a.to_payload()
    arrays_b, meta_b = b.to_payload()
    assert meta_a == meta_b and sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name])


def test_every_record_kind_round_trips_exactly(tmp_path):
    store = ShardedStore(tmp_path / "s")
    records = [step_record(0), step_record(1),
               BreakdownRecord(answer_scores=np.array([[0.5, -1.25]], dtype=np.float32)),
               AdapterRecord(weights={"x.lora_A.weight": np.ones((2, 3), np.float32)},
                             losses=np.array([2.0, 1.0]), n_cut=1)]
    keys = [key_of(i) for i in range(len(records))]
    store.put_many(keys[:2], records[:2])
    store.put_many(keys[2:], records[2:])
    fresh = ShardedStore(tmp_path / "s")  # another reader: the index is built from the shards
    for key, record in zip(keys, records):
        assert_same(fresh.get(key), record)
    assert fresh.get(key_of(99)) is None
    with pytest.warns(CacheWarning, match="expected BreakdownRecord"):
        assert fresh.get(keys[0], kind=BreakdownRecord) is None
    assert len(fresh) == 4 and sorted(fresh.keys()) == sorted(keys)


def test_hidden_states_as_float16_on_request(tmp_path):
    store = ShardedStore(tmp_path / "s", hidden_dtype="float16")
    record = step_record(3)
    store.put_many([key_of(3)], [record])
    back = ShardedStore(tmp_path / "s").get(key_of(3))
    np.testing.assert_array_equal(back.position_scores, record.position_scores)  # scores exact
    np.testing.assert_allclose(back.hidden, record.hidden, rtol=1e-3, atol=1e-3)
    assert back.hidden.dtype == np.float32


def _write_part(args):
    folder, start, stop, shard = args
    store = ShardedStore(folder)
    for lo in range(start, stop, shard):
        keys = [key_of(i) for i in range(lo, min(lo + shard, stop))]
        store.put_many(keys, [step_record(i, hidden=2) for i in range(lo, min(lo + shard, stop))])
    return stop - start


def test_100k_records_from_several_processes_read_back_by_key(tmp_path):
    folder = tmp_path / "s"
    ShardedStore(folder)  # created once; the writers open it
    n, parts = 100_000, 4
    bounds = [(str(folder), p * n // parts, (p + 1) * n // parts, 5_000) for p in range(parts)]
    with multiprocessing.get_context("fork").Pool(parts) as pool:
        assert sum(pool.map(_write_part, bounds)) == n
    store = ShardedStore(folder)
    assert len(store) == n
    probe = list(range(0, n, 997)) + [n - 1]
    got = store.get_many([key_of(i) for i in probe])
    for i, record in zip(probe, got):
        assert_same(record, step_record(i, hidden=2))
    assert store.contains([key_of(n), key_of(5)]).tolist() == [False, True]


def test_a_truncated_shard_is_ignored_with_a_warning(tmp_path):
    store = ShardedStore(tmp_path / "s")
    good = store.put_many([key_of(1)], [step_record(1)])
    bad = store.put_many([key_of(2)], [step_record(2)])
    bad.write_bytes(bad.read_bytes()[:50])
    fresh = ShardedStore(tmp_path / "s")
    with pytest.warns(CacheWarning, match=f"{bad.name} is unreadable"):
        assert fresh.get(key_of(2)) is None
    assert_same(fresh.get(key_of(1)), step_record(1))
    assert good.exists()
    info = fresh.info()
    assert len(info.entries) == 1 and info.foreign == [f"shards/{bad.name}"]


def test_a_record_with_non_finite_scores_is_refused_and_its_neighbours_kept(tmp_path):
    store = ShardedStore(tmp_path / "s")
    bad = step_record(5)
    bad.position_scores[0, 1] = np.nan
    store.put_many([key_of(4), key_of(5)], [step_record(4), bad])
    fresh = ShardedStore(tmp_path / "s")
    with pytest.warns(CacheWarning, match="non-finite"):
        got = fresh.get_many([key_of(4), key_of(5)])
    assert_same(got[0], step_record(4))
    assert got[1] is None


def test_a_half_written_shard_is_invisible(tmp_path):
    store = ShardedStore(tmp_path / "s")
    (tmp_path / "s" / "shards" / ".tmp-0123.parquet").write_bytes(b"PAR1 half")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(store) == 0
    assert store.info().orphans == ["shards/.tmp-0123.parquet"]


def test_a_new_store_needs_an_empty_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match="holds other files"):
        ShardedStore(tmp_path)


def test_cache_dir_reads_and_writes_a_sharded_store_as_it_is(tiny_llama, tmp_path):
    folder = tmp_path / "scores"
    ShardedStore(folder)
    check_cache_dir(folder)  # accepted as a cache_dir
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, "cache_dir": folder}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LLMMultiLabelClassifier(tiny_llama, **params).fit(TEXTS, LABEL_LISTS)
        proba = clf.predict_proba(TEXTS)
        assert (folder / MARKER).is_file() and not list(folder.glob("??"))  # no .npz layout
        clear_memory_cache()
        before = get_scoring_stats()["texts_scored"]
        again = LLMMultiLabelClassifier(tiny_llama, **params).fit(TEXTS, LABEL_LISTS)
        np.testing.assert_array_equal(again.predict_proba(TEXTS), proba)
    assert get_scoring_stats()["texts_scored"] == before
    cache = StepCache(folder, create=False)
    assert len(cache.info().entries) == len(set(TEXTS))
    assert cache.clear() == (len(set(TEXTS)), 0)
    assert len(ShardedStore(folder)) == 0


def test_sklml_score_then_predict_from_the_store(tiny_llama, tmp_path, capsys):
    import csv

    import joblib

    from sklearn_llm_multilabel.backends._load import load_model
    from sklearn_llm_multilabel.cli import main

    folder = tmp_path / "ckpt"
    load_model(tiny_llama, device="cpu").model.save_pretrained(folder)
    load_model(tiny_llama, device="cpu").tokenizer.save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LLMMultiLabelClassifier(str(folder), n_shots=2, show_progress=False,
                                      max_new_tokens=6).fit(TEXTS, LABEL_LISTS)
        expected = clf.predict_proba(TEXTS)
    joblib.dump(clf, tmp_path / "est.joblib")
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in TEXTS]])
    clear_memory_cache()
    store = tmp_path / "scores"
    assert main(["score", "--estimator", str(tmp_path / "est.joblib"), "--input", str(source),
                 "--output", str(store), "--quiet"]) == 0
    assert "records of 8 distinct texts" in capsys.readouterr().out
    import pyarrow.parquet as pq

    dtypes = {d for shard in (store / "shards").glob("*.parquet")
              for d in pq.read_table(shard, columns=["d.hidden"])["d.hidden"].to_pylist()}
    assert dtypes == {np.dtype(np.float16).str}  # the CLI's default: hidden states as float16
    clear_memory_cache()
    before = get_scoring_stats()["texts_scored"]
    out = tmp_path / "pred.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["predict", "--estimator", str(tmp_path / "est.joblib"), "--input",
                     str(source), "--store", str(store), "--output", str(out)]) == 0
    assert get_scoring_stats()["texts_scored"] == before
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = np.array([[float(r[f"p_{n}"]) for n in clf.label_names_] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert main(["cache", "info", "--cache-dir", str(store)]) == 0
    assert "8 cached texts" in capsys.readouterr().out
