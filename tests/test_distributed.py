"""The Ray runner on a local cluster, with a tiny model saved as a checkpoint folder."""

import os
import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from sklearn_llm_multilabel import (  # noqa: E402
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
    reset_scoring_stats,
)
from sklearn_llm_multilabel.distributed import _KILL_ONCE_ENV, score_dataset  # noqa: E402
from sklearn_llm_multilabel.scoring import record_keys, score_texts  # noqa: E402
from sklearn_llm_multilabel.store._sharded import ShardedStore  # noqa: E402
from sklearn_llm_multilabel.testing import make_tiny_model  # noqa: E402

from .conftest import LABEL_LISTS, TEXTS  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning",
    "ignore::sklearn_llm_multilabel.exceptions.IdenticalGenerationsWarning",
    "ignore::DeprecationWarning", "ignore::FutureWarning",
)
CORPUS = [f"{TEXTS[i % len(TEXTS)]} number {i}" for i in range(30)] + [TEXTS[0]] * 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    marker = tmp_path_factory.mktemp("fault") / "kill-once"
    os.environ[_KILL_ONCE_ENV] = str(marker)  # inherited by the workers Ray starts
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield marker
    ray.shutdown()
    os.environ.pop(_KILL_ONCE_ENV, None)


@pytest.fixture(scope="module")
def checkpoint(tiny_tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    make_tiny_model(tiny_tokenizer, "llama", seed=0).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return str(folder)


def fitted(checkpoint, **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LLMMultiLabelClassifier(checkpoint, **params).fit(TEXTS, LABEL_LISTS)


def rows_in(folder) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in (folder / "shards").glob("*.parquet")
               if not p.name.startswith("."))  # not a shard being written


def test_ray_records_equal_the_local_engine_and_a_fresh_estimator_scores_nothing(
        cluster, checkpoint, tmp_path):
    clf = fitted(checkpoint)
    summary = score_dataset(clf, CORPUS, output=tmp_path / "store", batch_size=8,
                            show_progress=False, hidden_states=True)
    assert (summary.n_texts, summary.n_unique, summary.n_scored) == (33, 31, 31)
    local = fitted(checkpoint)
    local_keys = score_texts(local, CORPUS, store=tmp_path / "local")
    assert local_keys == record_keys(clf, CORPUS)
    ray_store, local_store = ShardedStore(tmp_path / "store"), ShardedStore(tmp_path / "local")
    for key in set(local_keys):
        a, b = ray_store.get(key), local_store.get(key)
        np.testing.assert_allclose(a.position_scores, b.position_scores, atol=1e-6)
        np.testing.assert_allclose(a.hidden, b.hidden, atol=1e-6)
        assert a.text == b.text and (a.step_positions == b.step_positions).all()
    expected = local.predict_proba(CORPUS)
    clear_memory_cache()
    reset_scoring_stats()
    fresh = fitted(checkpoint, cache_dir=tmp_path / "store")
    np.testing.assert_allclose(fresh.predict_proba(CORPUS), expected, atol=1e-6)
    stats = get_scoring_stats()
    assert stats["texts_scored"] == 0 and stats["weights_loaded"] == 0
    assert rows_in(tmp_path / "store") == 31


def test_a_worker_killed_mid_batch_is_retried_and_every_key_is_written_once(
        cluster, checkpoint, tmp_path):
    cluster.write_text("armed")
    clf = fitted(checkpoint)
    summary = score_dataset(clf, CORPUS, output=tmp_path / "store", batch_size=4,
                            show_progress=False)
    assert not cluster.exists()  # a worker did die
    assert summary.n_scored == 31
    store = ShardedStore(tmp_path / "store")
    assert store.contains(record_keys(clf, CORPUS)).all()
    assert rows_in(tmp_path / "store") == 31  # the retried batch wrote nothing twice


KILLED_DRIVER = """
import sys, warnings
warnings.simplefilter("ignore")
import ray
from sklearn_llm_multilabel import LLMMultiLabelClassifier
from sklearn_llm_multilabel.distributed import score_dataset
from tests.conftest import LABEL_LISTS, TEXTS

checkpoint, output, address = sys.argv[1:4]
ray.init(address=address, log_to_driver=False)
clf = LLMMultiLabelClassifier(checkpoint, n_shots=2, show_progress=False, max_new_tokens=6)
clf.fit(TEXTS, LABEL_LISTS)
corpus = [f"{TEXTS[i % len(TEXTS)]} item {i}" for i in range(int(sys.argv[4]))]
score_dataset(clf, corpus, output=output, batch_size=4, show_progress=False)
"""


def test_a_killed_driver_leaves_no_writer_and_a_rerun_scores_each_text_once(
        cluster, checkpoint, tmp_path):
    """kill -9 of a driver mid-run: its actors stop before another write, the rerun waits for
    them, and skipped + scored is the number of distinct texts, each stored once."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sklearn_llm_multilabel import _leases

    n_texts = 1500
    store = tmp_path / "store"
    root = Path(__file__).resolve().parents[1]
    driver = subprocess.Popen(
        [sys.executable, "-c", KILLED_DRIVER, checkpoint, str(store),
         ray.get_runtime_context().gcs_address, str(n_texts)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if (store / "shards").is_dir() and rows_in(store) >= 8:
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the driver ended before it could be killed mid-run"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(4 * _leases.HEARTBEAT_SECONDS)  # the actors' watchdogs have seen the death
    at_rest = rows_in(store)
    assert not _leases.live_writers_of_dead_runs(store)[0]
    time.sleep(2 * _leases.HEARTBEAT_SECONDS)
    assert rows_in(store) == at_rest < n_texts  # nobody writes any more
    clf = fitted(checkpoint)
    corpus = [f"{TEXTS[i % len(TEXTS)]} item {i}" for i in range(n_texts)]
    summary = score_dataset(clf, corpus, output=store, batch_size=64, show_progress=False)
    assert summary.n_skipped == at_rest
    assert summary.n_skipped + summary.n_scored == summary.n_unique == n_texts
    assert rows_in(store) == n_texts  # every text stored once
    assert not any((store / _leases.RUNS).iterdir())


def test_a_resumed_run_rescores_damaged_records_on_the_workers_not_the_driver(
        cluster, checkpoint, tmp_path):
    from sklearn_llm_multilabel.exceptions import CacheWarning

    clf = fitted(checkpoint)
    store = tmp_path / "store"
    score_dataset(clf, CORPUS[:8], output=store, batch_size=4, show_progress=False)
    key = record_keys(clf, CORPUS[:1])[0]
    damaged = ShardedStore(store).get(key)
    damaged.position_scores[0, 0] = np.nan
    for shard in (store / "shards").glob("*.parquet"):  # only the damaged copy is left
        shard.unlink()
    ShardedStore(store).put_many([key], [damaged])
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="it will be recomputed"):
        summary = score_dataset(clf, CORPUS[:8], output=store, batch_size=4,
                                show_progress=False)
    assert (summary.n_skipped, summary.n_scored) == (0, 8)  # the damaged one went to a worker
    clear_memory_cache()
    reset_scoring_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        fresh = fitted(checkpoint, cache_dir=store).predict_proba(CORPUS[:8])
    assert get_scoring_stats()["texts_scored"] == 0  # nothing is rescored here
    assert np.isfinite(fresh).all()


def test_an_interrupted_job_rerun_with_resume_scores_only_what_is_missing(
        cluster, checkpoint, tmp_path):
    clf = fitted(checkpoint)
    first = score_dataset(clf, CORPUS[:12], output=tmp_path / "store", batch_size=4,
                          show_progress=False)
    assert first.n_scored == 12
    again = score_dataset(clf, CORPUS, output=tmp_path / "store", batch_size=4,
                          show_progress=False)
    assert (again.n_unique, again.n_skipped, again.n_scored) == (31, 12, 19)
    assert rows_in(tmp_path / "store") == 31
    done = score_dataset(clf, CORPUS, output=tmp_path / "store", show_progress=False,
                         probabilities=tmp_path / "p.parquet", aggregations=("max", "hard"))
    assert done.n_scored == 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert len(table["text"]) == 2 * 31 and set(table["aggregation"]) == {"max", "hard"}
    first = [i for i, a in enumerate(table["aggregation"]) if a == "max"]
    local = clf.set_params(aggregation="max").predict_proba([table["text"][i] for i in first])
    np.testing.assert_allclose(np.column_stack([[table[f"p_{n}"][i] for i in first]
                                                for n in clf.label_names_]), local, atol=1e-6)


def test_inputs_from_parquet_csv_and_ray_datasets_and_breakdowns(cluster, checkpoint, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    texts = CORPUS[:6]
    pq.write_table(pa.table({"body": texts}), tmp_path / "in.parquet")
    pacsv.write_csv(pa.table({"text": texts}), tmp_path / "in.csv")
    clf = fitted(checkpoint)
    out = tmp_path / "store"
    assert score_dataset(clf, tmp_path / "in.parquet", output=out, text_column="body",
                         kinds=("steps", "unary"), show_progress=False).n_scored == 6
    assert score_dataset(clf, tmp_path / "in.csv", output=out, kinds=("steps", "unary"),
                         show_progress=False).n_scored == 0
    ds = ray.data.from_items([{"text": t} for t in texts])
    assert score_dataset(clf, ds, output=out, kinds=("steps", "unary"),
                         show_progress=False).n_scored == 0
    reset_scoring_stats()
    clear_memory_cache()
    fresh = fitted(checkpoint, cache_dir=out, aggregation="unary")
    assert fresh.predict_proba(texts).shape == (6, 3)
    assert get_scoring_stats()["texts_scored"] == 0


def test_bad_input_is_a_clear_error(cluster, checkpoint, tiny_llama, tmp_path):
    registered = LLMMultiLabelClassifier(tiny_llama, n_shots=2, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registered.fit(TEXTS, LABEL_LISTS)
    with pytest.raises(ValueError, match="cannot load a model given to register_model"):
        score_dataset(registered, CORPUS, output=tmp_path / "a")
    clf = fitted(checkpoint)
    with pytest.raises(ValueError, match="kinds must be"):
        score_dataset(clf, CORPUS, output=tmp_path / "b", kinds=("nope",))
    with pytest.raises(ValueError, match="no column 'text'"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"body": ["x"]}), tmp_path / "in.parquet")
        score_dataset(clf, tmp_path / "in.parquet", output=tmp_path / "c")


def test_ray_dataset_texts_must_be_strings(cluster, checkpoint, tmp_path):
    clf = fitted(checkpoint)
    numbers = ray.data.from_items([{"text": 7}, {"text": 100000}])
    with pytest.raises(ValueError, match=r"dataset row 0: the text is int 7"):
        score_dataset(clf, numbers, output=tmp_path / "s", show_progress=False)
    assert not (tmp_path / "s").exists()  # refused before anything is written
    source = tmp_path / "in.csv"
    source.write_text("text\n007\n\"\"\n3.10\n", encoding="utf-8")
    summary = score_dataset(clf, source, output=tmp_path / "t", show_progress=False,
                            skip_invalid_texts=True)
    assert (summary.n_texts, summary.n_invalid) == (2, 1)
    clear_memory_cache()
    reset_scoring_stats()
    clf.set_params(cache_dir=str(tmp_path / "t")).predict_proba(["007", "3.10"])
    assert get_scoring_stats()["texts_scored"] == 0  # stored under the texts as written
