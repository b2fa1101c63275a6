"""Concurrency: threads scoring at once get exactly the sequential results."""

import sys
import threading

import numpy as np
import pytest

from sklearn_llm_multilabel import LLMMultiLabelClassifier, clear_memory_cache

from .conftest import LABEL_LISTS, TEXTS

QUERIES = [f"{t} and then {u}" for t in TEXTS for u in ("rain", "a goal", "the vote")]


def _estimators(spec):
    first = LLMMultiLabelClassifier(model=spec, n_shots=2, batch_size=1, show_progress=False,
                                    max_new_tokens=8)
    second = LLMMultiLabelClassifier(model=spec, n_shots=3, batch_size=2, show_progress=False,
                                     max_new_tokens=8, random_state=1,
                                     instruction="Pick the labels of each input from: {labels}.")
    return [est.fit(TEXTS, LABEL_LISTS) for est in (first, second)]


def _outputs(est, texts):
    """Max-over-steps probabilities, first-step distributions and hidden states (no set_params:
    the estimator itself is shared by the threads)."""
    first = np.stack([trace["step_distributions"][0] for trace in est.predict_steps(texts)])
    return np.hstack([est.predict_proba(texts), first, est.first_step_hidden_states(texts)])


@pytest.fixture(autouse=True)
def _frequent_switches():
    """Switch threads every few microseconds so that scoring calls interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def _run_in_threads(jobs):
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def run(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("repeat", range(2))
def test_two_estimators_on_one_model_in_two_threads_equal_sequential(tiny_llama, repeat):
    estimators = _estimators(tiny_llama)
    sequential = []
    for est in estimators:
        clear_memory_cache()
        sequential.append(_outputs(est, QUERIES))
    for _ in range(3):
        clear_memory_cache()
        threaded = _run_in_threads([lambda e=est: _outputs(e, QUERIES) for est in estimators])
        for got, expected in zip(threaded, sequential):
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    model = estimators[0]._loaded_model().model
    assert model.config._attn_implementation == "sklml_shared_prefix"


def test_one_estimator_shared_by_threads_equals_sequential(tiny_llama):
    est = _estimators(tiny_llama)[0]
    halves = [QUERIES[::2], QUERIES[1::2]]
    sequential = [_outputs(est, h) for h in halves]
    clear_memory_cache()
    threaded = _run_in_threads([lambda h=h: _outputs(est, h) for h in halves] * 2)
    for got, expected in zip(threaded, sequential * 2):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
