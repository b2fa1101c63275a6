"""Cache below aggregation: in-process, on disk, integrity, and no model re-runs."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_llm_multilabel import (
    LLMMultiLabelClassifier,
    clear_memory_cache,
    get_scoring_stats,
)
from sklearn_llm_multilabel.exceptions import CacheWarning, NoLabelStepWarning
from sklearn_llm_multilabel.scoring import fill as score_texts

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings("ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning")


def make_clf(spec, **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, "batch_size": 3,
              **params}
    return LLMMultiLabelClassifier(model=spec, **params)


def texts_scored():
    return get_scoring_stats()["texts_scored"]


def test_other_aggregation_and_clone_do_not_rerun_the_model(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    first = clf.predict_proba(TEXTS)
    assert texts_scored() == len(TEXTS)
    for aggregation in ("first", "mean", "hard", "max"):
        clf.set_params(aggregation=aggregation).predict_proba(TEXTS)
    clone(clf).fit(TEXTS, LABEL_LISTS).predict(TEXTS)
    assert texts_scored() == len(TEXTS)
    np.testing.assert_array_equal(clf.set_params(aggregation="max").predict_proba(TEXTS), first)


def test_duplicate_texts_scored_once(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert texts_scored() == 2
    np.testing.assert_array_equal(proba[0], proba[2])


def test_grid_search_runs_the_model_once_per_distinct_text(tiny_llama):
    texts = TEXTS + [t + " today" for t in TEXTS]
    y = LABEL_LISTS + LABEL_LISTS
    grid = GridSearchCV(
        make_clf(tiny_llama, labels=LABELS),
        {"aggregation": ["first", "max", "mean", "hard"], "threshold": [0.2, 0.5, 0.8]},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    grid.fit(texts, y)
    assert texts_scored() == len(texts)
    assert len(grid.cv_results_["params"]) == 12
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))


def test_disk_cache_is_reused_by_a_new_estimator(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == len(TEXTS)
    assert not list(tmp_path.rglob(".tmp-*"))
    clear_memory_cache()  # as in a new process
    again = make_clf(tiny_llama, cache_dir=str(tmp_path), aggregation="mean").fit(
        TEXTS, LABEL_LISTS
    )
    mean = again.predict_proba(TEXTS)
    assert texts_scored() == len(TEXTS)
    np.testing.assert_array_equal(again.set_params(aggregation="max").predict_proba(TEXTS),
                                  expected)
    assert mean.shape == expected.shape


def test_corrupt_entries_are_detected_and_recomputed(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    expected = clf.predict_proba(TEXTS)
    files = sorted(tmp_path.rglob("*.npz"))
    files[0].write_bytes(files[0].read_bytes()[:50])  # truncated
    files[1].write_bytes(b"not a zip file at all")  # garbage
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="unreadable"):
        again = clf.predict_proba(TEXTS)
    assert texts_scored() == len(TEXTS) + 2
    np.testing.assert_allclose(again, expected, atol=1e-6)
    clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # rewritten entries read back cleanly
        clf.predict_proba(TEXTS)


def test_entry_for_another_key_is_rejected(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:2])
    a, b = sorted(tmp_path.rglob("*.npz"))
    b.write_bytes(a.read_bytes())  # a valid file under the wrong name
    clear_memory_cache()
    with pytest.warns(CacheWarning, match="another key"):
        clf.predict_proba(TEXTS[:2])


def test_cache_files_contain_no_pickle(tiny_llama, tmp_path):
    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    clf.predict_proba(TEXTS[:1])
    [path] = tmp_path.rglob("*.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def test_key_changes_with_model_prompt_and_labels(tiny_llama, tiny_gpt2):
    base = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    key = base._scorer().query_key(base._scorer().prepare_queries(TEXTS[:1])[0])
    variants = [
        make_clf(tiny_gpt2).fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, n_shots=3).fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, labels=["sports", "weather", "politics"]).fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, instruction="Pick labels: {labels}.").fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, label_format="json").fit(TEXTS, LABEL_LISTS),
        make_clf(tiny_llama, dtype="float64").fit(TEXTS, LABEL_LISTS),
    ]
    keys = {v._scorer().query_key(v._scorer().prepare_queries(TEXTS[:1])[0]) for v in variants}
    assert key not in keys and len(keys) == len(variants)
    same = make_clf(tiny_llama, aggregation="first", threshold=0.3).fit(TEXTS, LABEL_LISTS)
    assert same._scorer().query_key(same._scorer().prepare_queries(TEXTS[:1])[0]) == key


def test_interrupted_run_resumes_without_rescoring(tiny_llama, tmp_path, monkeypatch):
    clf = make_clf(tiny_llama, cache_dir=tmp_path, batch_size=2).fit(TEXTS, LABEL_LISTS)
    scorer = clf._scorer()
    original = scorer._score_rows
    calls = {"n": 0}

    def interrupt_after_two_batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(scorer, "_score_rows", interrupt_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        clf.predict_proba(TEXTS)
    assert len(list(Path(tmp_path).rglob("*.npz"))) == 4
    monkeypatch.setattr(scorer, "_score_rows", original)
    clear_memory_cache()
    before = texts_scored()
    clf.predict_proba(TEXTS)
    assert texts_scored() - before == len(TEXTS) - 4


def test_concurrent_writers_leave_a_valid_cache(tiny_llama, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from sklearn_llm_multilabel.store._files import StepCache

    clf = make_clf(tiny_llama, cache_dir=tmp_path).fit(TEXTS, LABEL_LISTS)
    scorer = clf._scorer()
    [reference] = score_texts(scorer, StepCache(tmp_path), TEXTS[:1], batch_size=1)
    key = scorer.query_key(scorer.prepare_queries(TEXTS[:1])[0])
    cache = StepCache(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: cache.put(key, reference), range(32)))
    clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        record = StepCache(tmp_path).get(key)
    np.testing.assert_array_equal(record.position_scores, reference.position_scores)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_no_step_generations_are_counted_and_warned(tiny_llama):
    clf = make_clf(tiny_llama).fit(TEXTS, LABEL_LISTS)
    records = clf._records(TEXTS)
    n_missing = sum(not r.has_steps for r in records)
    assert n_missing > 0  # the random tiny model rarely writes a label
    with pytest.warns(NoLabelStepWarning, match=f"{n_missing} of {len(TEXTS)} generations"):
        clf.predict_proba(TEXTS)
