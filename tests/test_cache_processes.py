"""The on-disk cache across real processes: concurrent writers, then a reader."""

import json
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    from sklearn_llm_multilabel import LLMMultiLabelClassifier, get_scoring_stats, register_model
    from sklearn_llm_multilabel.exceptions import CacheWarning
    from sklearn_llm_multilabel.testing import make_tiny_model, make_tiny_tokenizer
    warnings.simplefilter("error", CacheWarning)
    warnings.filterwarnings("ignore", message=".*no label-generation step")
    tok = make_tiny_tokenizer()
    register_model("tiny-proc", make_tiny_model(tok, "llama", seed=0), tok)
    texts = [f"text number {i} about rain and goals" for i in range(40)]
    y = [["weather"], ["sports"], ["weather", "sports"], ["sports", "weather"]] * 10
    clf = LLMMultiLabelClassifier(model="tiny-proc", n_shots=2, max_new_tokens=4,
                                  batch_size=4, cache_dir=sys.argv[1], show_progress=False)
    proba = clf.fit(texts, y).predict_proba(texts)
    print(json.dumps({"scored": get_scoring_stats()["texts_scored"], "proba": proba.tolist()}))
""")


def run_all(tmp_path, n):
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_concurrent_processes_then_a_new_process_reuses_the_cache(tmp_path):
    first = run_all(tmp_path, 2)  # two processes scoring into one folder at once
    assert all(r["scored"] <= 40 for r in first)
    assert len(list(tmp_path.rglob("*.npz"))) == 40
    assert not list(tmp_path.rglob(".tmp-*"))
    [third] = run_all(tmp_path, 1)  # reads every entry cleanly (CacheWarning is an error)
    assert third["scored"] == 0
    # The two writers may each score a different subset (whatever the other has not
    # written yet), so batches and padding differ: equal up to float32 noise.
    np.testing.assert_allclose(third["proba"], first[0]["proba"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(third["proba"], first[1]["proba"], atol=1e-6, rtol=0)
