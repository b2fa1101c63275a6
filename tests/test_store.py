"""The sharded Parquet store: exact round trips, concurrent writers, damaged shards."""

import hashlib
import json
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
from sklearn_llm_multilabel.exceptions import CacheWarning  # noqa: E402
from sklearn_llm_multilabel.store._files import StepCache, check_cache_dir  # noqa: E402
from sklearn_llm_multilabel.store._records import (  # noqa: E402
    AdapterRecord,
    BreakdownRecord,
    StepRecord,
)
from sklearn_llm_multilabel.store._sharded import MARKER, ShardedStore  # noqa: E402

from .conftest import (  # noqa: E402
    LABEL_LISTS,
    TEXTS,
    predict_from_store,
    saved_checkpoint_estimator,
)


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

    from sklearn_llm_multilabel.cli import main
    from sklearn_llm_multilabel.persistence import save_estimator

    clf = saved_checkpoint_estimator(tiny_llama, tmp_path / "ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = clf.predict_proba(TEXTS)
    save_estimator(clf, tmp_path / "est.skops")
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], *[[t] for t in TEXTS]])
    clear_memory_cache()
    store = tmp_path / "scores"
    assert main(["score", "--estimator", str(tmp_path / "est.skops"), "--input", str(source),
                 "--output", str(store), "--quiet"]) == 0
    assert "records of 8 distinct texts" in capsys.readouterr().out
    import pyarrow.parquet as pq

    dtypes = {d for shard in (store / "shards").glob("*.parquet")
              for d in pq.read_table(shard, columns=["d.hidden"])["d.hidden"].to_pylist()}
    assert dtypes == {np.dtype(np.float16).str}  # the CLI's default: hidden states as float16
    rows = predict_from_store(tmp_path / "est.skops", source, store, tmp_path / "pred.csv")
    got = np.array([[float(r[f"p_{n}"]) for n in clf.label_names_] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert main(["cache", "info", "--cache-dir", str(store)]) == 0
    assert "8 cached texts" in capsys.readouterr().out


# ----------------------------------------------------- many records at once
def varied_record(i: int) -> StepRecord:
    """Records of every shape the engine writes: 1-5 positions, 0-3 steps, any labels."""
    rng = np.random.default_rng(100 + i)
    n_pos = 1 + i % 5
    n_valid = int(rng.integers(0, n_pos + 1))
    n_steps = int(rng.integers(0, min(n_valid, 3) + 1))
    positions = np.sort(rng.choice(n_valid, size=n_steps, replace=False)) if n_steps else []
    labels = rng.choice(5, size=n_steps, replace=False) if n_steps else []
    return StepRecord(
        position_scores=rng.normal(size=(n_pos, 5)).astype(np.float32),
        generated_ids=rng.integers(0, 100, size=n_pos), n_valid=n_valid,
        step_positions=np.asarray(positions, dtype=np.int64),
        step_labels=np.asarray(labels, dtype=np.int64),
        label_mass=rng.random(n_pos).astype(np.float32),
        hidden=rng.normal(size=6).astype(np.float32), text=f"generated {i}",
        parsed=tuple(["a", "b"][: i % 3]), unknown=("zz",) if i % 4 == 0 else ())


@pytest.mark.parametrize("hidden_dtype", ["float32", "float16"])
def test_records_read_many_at_once_equal_records_read_one_by_one(tmp_path, hidden_dtype):
    from sklearn_llm_multilabel.store import _columns as _shard_columns

    store = ShardedStore(tmp_path / "s", hidden_dtype=hidden_dtype)
    records = [varied_record(i) for i in range(60)]
    keys = [key_of(i) for i in range(60)]
    store.put_many(keys[:40], records[:40])
    store.put_many(keys[40:], records[40:])
    fresh = ShardedStore(tmp_path / "s")
    wanted = keys[::-1] + [key_of(999)]  # out of order, across both shards, one absent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        together = fresh.get_many(wanted)
    assert together[-1] is None
    fresh.refresh()
    for key, record in zip(wanted[:-1], together[:-1]):
        shard, row = (int(v) for v in fresh._locate([key])[0])
        alone = fresh._table(shard).record(row, key, None)  # the row decoded on its own
        assert_same(record, alone)
        if hidden_dtype == "float32":
            assert_same(record, records[keys.index(key)])
    # the rows went through the vectorised checks, not one by one
    table = fresh._table(0)
    assert set(table.rest) == {"{}"}  # every metadata field has a column of its own
    packed = {name: table.columns[name].pack(np.arange(len(table.digests)))
              for name in StepRecord._ARRAYS}
    built = _shard_columns.step_records_from_packed(packed, table.fields, finite=True)
    assert all(r is not None for r in built)


def test_a_record_read_alone_does_not_hold_its_whole_shard(tmp_path):
    store = ShardedStore(tmp_path / "s")
    store.put_many([key_of(i) for i in range(300)], [varied_record(i) for i in range(300)])
    [record] = ShardedStore(tmp_path / "s").get_many([key_of(7)])
    for name in StepRecord._ARRAYS:
        array = getattr(record, name)
        owner = array
        while owner.base is not None and isinstance(owner.base, np.ndarray):
            owner = owner.base
        assert owner.nbytes == array.nbytes, name  # its own buffer, not the shard's


class _Raw:
    """Writes any payload under the StepRecord kind, as a damaged store would hold it."""

    def __init__(self, arrays, meta):
        self.arrays, self.meta = arrays, meta

    def to_payload(self):
        return self.arrays, self.meta


_Raw.__name__ = "StepRecord"


def _payload(**changes):
    record = step_record(1)  # 3 positions, steps at 0 and 1 with labels 1 and 0, 4 columns
    arrays, meta = record.to_payload()
    for name, value in changes.items():
        target = arrays if name in arrays else meta
        if value is None:
            target.pop(name)
        else:
            target[name] = value
    return arrays, meta


CORRUPTIONS = {
    "step past n_valid": dict(n_valid=1),
    "negative step": dict(step_positions=np.array([-1, 1])),
    "steps not increasing": dict(step_positions=np.array([1, 1])),
    "label past the columns": dict(step_labels=np.array([1, 4])),
    "negative label": dict(step_labels=np.array([-1, 0])),
    "label repeated": dict(step_labels=np.array([1, 1])),
    "steps and labels differ": dict(step_labels=np.array([1])),
    "scores rows": dict(position_scores=np.zeros((2, 4), np.float32)),
    "label mass length": dict(label_mass=np.zeros(2, np.float32)),
    "n_valid past positions": dict(n_valid=4),
    "n_valid a bool": dict(n_valid=True),
    "n_valid a string": dict(n_valid="3"),
    "text not a string": dict(text=3),
    "parsed not strings": dict(parsed=[1]),
    "unknown missing": dict(unknown=None),
    "scores 1-d": dict(position_scores=np.zeros(12, np.float32)),
    "scores 3-d": dict(position_scores=np.zeros((3, 2, 2), np.float32)),
    "ids as floats": dict(generated_ids=np.zeros(3, np.float32)),
    "hidden missing": dict(hidden=None),
    "hidden not finite": dict(hidden=np.array([np.inf] * 8, np.float32)),
    "one label column": dict(position_scores=np.zeros((3, 1), np.float32),
                             step_labels=np.array([0, 0])[:0], step_positions=np.array([])[:0]
                             .astype(np.int64)),
    "no positions": dict(position_scores=np.zeros((0, 4), np.float32),
                         generated_ids=np.zeros(0, np.int64), label_mass=np.zeros(0, np.float32),
                         n_valid=0, step_positions=np.zeros(0, np.int64),
                         step_labels=np.zeros(0, np.int64)),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_the_vectorised_checks_refuse_every_damaged_row_that_from_payload_refuses(tmp_path, name):
    arrays, meta = _payload(**CORRUPTIONS[name])
    with pytest.raises(ValueError):  # the damage is one a record cannot hold
        StepRecord.from_payload(dict(arrays), dict(meta))
    store = ShardedStore(tmp_path / "s")
    keys = [key_of(0), key_of(1), key_of(2)]
    store.put_many(keys, [step_record(0), _Raw(arrays, meta), step_record(2)])
    fresh = ShardedStore(tmp_path / "s")
    with pytest.warns(CacheWarning, match=f"Record {keys[1]} in shard .* is unreadable"):
        got = fresh.get_many(keys)
    assert got[1] is None  # recomputed by the caller; its neighbours are read
    assert_same(got[0], step_record(0))
    assert_same(got[2], step_record(2))
    # and the vectorised checks alone refuse it, wherever its columns can be packed at all
    from sklearn_llm_multilabel.store import _columns as _shard_columns

    table = fresh._table(0)
    packed = {n: (table.columns[n].pack(np.arange(3)) if n in table.columns else None)
              for n in StepRecord._ARRAYS}
    names = ("n_valid", "text", "parsed", "unknown")
    if all(p is not None for p in packed.values()) and all(n in table.fields for n in names):
        built = _shard_columns.step_records_from_packed(packed, table.fields, finite=table.finite)
        assert built[1] is None
        assert built[0] is not None or not table.finite


def test_a_shard_holding_every_kind_of_damage_at_once_keeps_its_good_rows(tmp_path):
    # Damaged rows next to each other must not hide one another from the checks
    # (e.g. one row's steps and labels of different lengths next to a repeated label).
    # (damage that changes a column's type sends the whole shard down the one-by-one path;
    # each such damage is tested on its own above)
    by_type = ("ids as floats", "hidden not finite", "n_valid a bool", "n_valid a string",
               "text not a string", "parsed not strings", "unknown missing", "hidden missing")
    names = sorted(n for n in CORRUPTIONS if n not in by_type)
    records, bad = [], set()
    for i, name in enumerate(names):
        records.append(step_record(100 + i))
        records.append(_Raw(*_payload(**CORRUPTIONS[name])))
        bad.add(2 * i + 1)
    keys = [key_of(1000 + i) for i in range(len(records))]
    ShardedStore(tmp_path / "s").put_many(keys, records)
    fresh = ShardedStore(tmp_path / "s")
    with pytest.warns(CacheWarning):
        got = fresh.get_many(keys)
    table = fresh._table(0)
    assert set(table.rest) == {"{}"} and all(c.typed is not None for c in table.columns.values())
    for i, record in enumerate(got):
        if i in bad:
            assert record is None, names[i // 2]
        else:
            assert_same(record, records[i])


def test_metadata_fields_of_one_simple_type_get_columns_and_the_rest_stays_json():
    from sklearn_llm_multilabel.store._columns import split_meta

    rest, columns = split_meta([
        {"n": 1, "s": "x", "l": ["p"], "flag": True, "mixed": 1, "big": 2**70, "only": 0},
        {"n": 2, "s": "y", "l": [], "flag": False, "mixed": "1", "big": 1},
    ])
    assert columns == {"n": ([1, 2], "int64"), "s": (["x", "y"], "string"),
                       "l": ([["p"], []], "list<string>")}
    assert [json.loads(r) for r in rest] == [{"flag": True, "mixed": 1, "big": 2**70, "only": 0},
                                             {"flag": False, "mixed": "1", "big": 1}]


def test_keys_that_are_not_sha256_hex_are_refused(tmp_path):
    store = ShardedStore(tmp_path / "s")
    store.put_many([key_of(1)], [step_record(1)])
    long = key_of(1) + "ff"  # would match key_of(1) if keys were cut to 64 bytes
    for bad in (long, "xyz", key_of(1).upper(), None):
        with pytest.raises(ValueError, match="64 lowercase hexadecimal"):
            store.get_many([bad])
        with pytest.raises(ValueError, match="64 lowercase hexadecimal"):
            store.put_many([bad], [step_record(2)])


def test_records_served_from_memory_are_written_to_the_sharded_store(tiny_llama, tmp_path):
    """Texts scored in memory first (no cache_dir), then given to a new sharded store or an
    existing sharded cache_dir: the folder ends up holding every record it served."""
    from sklearn_llm_multilabel.scoring import score_texts

    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LLMMultiLabelClassifier(tiny_llama, **params).fit(TEXTS, LABEL_LISTS)
        clf.predict_proba(TEXTS[:6])  # in memory only
        before = get_scoring_stats()["texts_scored"]
        keys = score_texts(clf, TEXTS[:6], store=tmp_path / "new")
        assert get_scoring_stats()["texts_scored"] == before  # served from memory
        assert ShardedStore(tmp_path / "new").contains(keys).all()
        folder = tmp_path / "existing"
        ShardedStore(folder)
        clf.set_params(cache_dir=folder).predict_proba(TEXTS)  # 6 from memory, the rest scored
        clear_memory_cache()
        assert len(StepCache(folder, create=False).info().entries) == len(set(TEXTS))


def test_user_files_in_a_sharded_store_are_counted_as_foreign(tmp_path, capsys):
    from sklearn_llm_multilabel.cli import main

    store = ShardedStore(tmp_path / "scores")
    store.put_many([key_of(1)], [step_record(1)])
    (tmp_path / "scores" / "notes.txt").write_text("mine")
    (tmp_path / "scores" / "shards" / "README").write_text("mine too")
    info = StepCache(tmp_path / "scores", create=False).info()
    assert len(info.entries) == 1 and info.foreign == ["notes.txt", "shards/README"]
    assert main(["cache", "info", "--cache-dir", str(tmp_path / "scores")]) == 0
    out = capsys.readouterr().out
    assert "1 cached texts" in out and "2 unreadable shards or other files" in out
    assert StepCache(tmp_path / "scores", create=False).clear() == (1, 0)
    assert (tmp_path / "scores" / "notes.txt").read_text() == "mine"  # never removed
