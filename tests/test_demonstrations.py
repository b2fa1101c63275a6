"""Demonstrations chosen per text (demo_selection="knn") and prompt ensembles (n_prompts)."""

import numpy as np
import pytest

from sklearn_llm_multilabel import LLMMultiLabelClassifier, _retrieval, get_scoring_stats
from sklearn_llm_multilabel._retrieval import nearest_demonstrations, top_k
from sklearn_llm_multilabel.exceptions import DemonstrationWarning, ModelLoadError
from sklearn_llm_multilabel.testing import make_tiny_encoder_dir

from .conftest import LABEL_LISTS, TEXTS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRAIN = [f"{t} {i}" for i in range(3) for t in TEXTS]
TRAIN_Y = LABEL_LISTS * 3
QUERIES = ["rain and wind all night", "a late goal won the game", "a vote on the law"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_tiny_encoder_dir(tmp_path_factory.mktemp("tiny-encoder"))


def knn(tiny_llama, encoder, **params):
    params = {"n_shots": 3, "show_progress": False, "max_new_tokens": 6, **params}
    return LLMMultiLabelClassifier(tiny_llama, demo_selection="knn", demo_encoder=encoder,
                                   **params).fit(TRAIN, TRAIN_Y)


def test_nearest_rows_by_hand():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    query = np.array([[1.0, 0.0]])
    # rows 0 and 2 tie at 1.0 (the lower index counts as nearer), then 3 (0.6): farthest first
    assert nearest_demonstrations(query, pool, 3).tolist() == [[3, 2, 0]]
    assert nearest_demonstrations(query, pool, 2, exclude=[[0]]).tolist() == [[3, 2]]
    eligible = np.array([False, True, True, True])
    assert nearest_demonstrations(query, pool, 2, eligible=eligible).tolist() == [[3, 2]]
    # fewer candidates than shots after exclusion: -1 in front
    assert nearest_demonstrations(query, pool, 2, eligible=np.array([1, 0, 0, 0], bool),
                                  exclude=[[0]]).tolist() == [[-1]]


def reference_nearest(queries, pool, k, eligible, exclude):
    """The full stable sort that the partial selection must agree with."""
    sims = queries.astype(np.float32) @ pool.astype(np.float32).T
    sims[:, ~eligible] = -np.inf
    for row, banned in enumerate(exclude):
        sims[row, banned] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(sims, order, axis=1) == -np.inf, -1, order)[:, ::-1]


@pytest.mark.parametrize("block", [_retrieval._MAX_BLOCK, 40, 1])
def test_the_blocked_partial_search_equals_the_full_sort_with_ties(monkeypatch, block):
    rng = np.random.default_rng(0)
    # few distinct values, so many similarities tie at the k-th place
    pool = rng.integers(-2, 3, size=(30, 4)).astype(float)
    queries = rng.integers(-2, 3, size=(12, 4)).astype(float)
    eligible = rng.random(30) > 0.2
    exclude = [list(rng.choice(30, size=i % 4, replace=False)) for i in range(12)]
    monkeypatch.setattr(_retrieval, "_MAX_BLOCK", block)
    for k in (1, 5, 24, 30):
        expected = reference_nearest(queries, pool, min(k, eligible.sum()), eligible, exclude)
        got = nearest_demonstrations(queries, pool, k, eligible=eligible, exclude=exclude)
        np.testing.assert_array_equal(got, expected)
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, -np.inf])
    assert top_k(values, 2).tolist() == [0, 2]
    assert top_k(values, 4).tolist() == [0, 2, 4, 3]
    assert top_k(values, 9).tolist() == [0, 2, 4, 3, 1, 5]


def test_each_text_gets_its_nearest_training_texts_never_itself(tiny_llama, encoder):
    from sklearn_llm_multilabel.backends._embed import embed_texts

    clf = knn(tiny_llama, encoder)
    assert len(clf.demo_pool_) == len(TRAIN) and clf.demo_embeddings_.shape[0] == len(TRAIN)
    texts = QUERIES + TRAIN[:4]
    sims = embed_texts(encoder, texts) @ clf.demo_embeddings_.T
    for rows, positions in clf._retrieved(texts):
        for i in positions:
            row_sims = sims[i].copy()
            if texts[i] in TRAIN:  # a training text never gets itself
                assert TRAIN.index(texts[i]) not in rows
                row_sims[TRAIN.index(texts[i])] = -np.inf
            best = np.argsort(-row_sims, kind="stable")[:3]
            assert list(rows) == best[::-1].tolist()
    # the prompt holds the nearest demonstration, right before the text
    (rows, _), = clf._retrieved([QUERIES[0]])
    nearest = clf.demo_pool_[rows[-1]][0]
    prompt = clf._base_model().tokenizer.decode(clf.prompt_token_ids(QUERIES[0]))
    assert prompt.rindex(nearest) < prompt.rindex(QUERIES[0])


def test_retrieved_prompts_batched_cached_and_keyed_by_their_demonstrations(tiny_llama, encoder):
    clf = knn(tiny_llama, encoder)
    together = clf.predict_proba(QUERIES)
    scored = get_scoring_stats()["texts_scored"]
    alone = np.vstack([clf.predict_proba([q]) for q in QUERIES])
    np.testing.assert_allclose(alone, together, atol=1e-6)
    assert get_scoring_stats()["texts_scored"] == scored  # served from the cache
    # the same texts with the fitted draw are other records: scored again
    clf.set_params(demo_selection="stratified")
    stratified = LLMMultiLabelClassifier(tiny_llama, n_shots=3, show_progress=False,
                                         max_new_tokens=6).fit(TRAIN, TRAIN_Y)
    stratified.predict_proba(QUERIES)
    assert get_scoring_stats()["texts_scored"] == scored + len(QUERIES)


def test_knn_bad_input(tiny_llama, encoder, tmp_path):
    with pytest.raises(ModelLoadError, match="Could not load encoder"):
        knn(tiny_llama, str(tmp_path))
    with pytest.raises(ValueError, match="use n_prompts=1"):
        knn(tiny_llama, encoder, n_prompts=2)
    with pytest.raises(ValueError, match="protocol='official' draws one set"):
        knn(tiny_llama, encoder, protocol="official")
    clf = knn(tiny_llama, encoder)
    with pytest.raises(ValueError, match="one scorer spec cannot describe"):
        clf.scorer_spec("steps")
    with pytest.warns(DemonstrationWarning, match="only 0 training texts can be shown"):
        LLMMultiLabelClassifier(tiny_llama, demo_selection="knn", demo_encoder=encoder,
                                n_shots=2, show_progress=False, max_new_tokens=4,
                                labels=["weather"], include_empty_demos=False).fit(
            TRAIN[:3], np.zeros((3, 1))).predict_proba(QUERIES[:1])


def test_n_prompts_average_distinct_draws(tiny_llama):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6}
    one = LLMMultiLabelClassifier(tiny_llama, **params).fit(TRAIN, TRAIN_Y)
    three = LLMMultiLabelClassifier(tiny_llama, n_prompts=3, **params).fit(TRAIN, TRAIN_Y)
    assert three.prompt_demonstrations_[0] == one.demonstrations_
    sets = {frozenset(t for t, _ in demos) for demos in three.prompt_demonstrations_}
    assert len(sets) == 3
    traces = three.predict_steps(QUERIES)
    per_prompt = np.stack([t["prompt_probabilities"] for t in traces])
    assert per_prompt.shape == (len(QUERIES), 3, 3)
    np.testing.assert_allclose(three.predict_proba(QUERIES), per_prompt.mean(axis=1))
    np.testing.assert_allclose(per_prompt[:, 0], one.predict_proba(QUERIES))
    assert "prompt_probabilities" not in one.predict_steps(QUERIES)[0]


def test_n_prompts_capped_to_what_the_data_allow(tiny_llama):
    with pytest.warns(DemonstrationWarning, match="n_prompts=4, but the training data give "
                                                  "only 1 different sets"):
        rows = [0, 1, 2, 5]  # two single- and two multi-label texts: one set of 4 shots
        clf = LLMMultiLabelClassifier(tiny_llama, n_shots=4, n_prompts=4, show_progress=False,
                                      labels=["weather", "sports", "politics"]).fit(
            [TEXTS[i] for i in rows], [LABEL_LISTS[i] for i in rows])
    assert len(clf.prompt_demonstrations_) == 1


def test_a_saved_knn_estimator_predicts_the_same(tiny_llama, encoder, tmp_path):
    from sklearn_llm_multilabel.persistence import load_estimator, save_estimator

    clf = knn(tiny_llama, encoder)
    save_estimator(clf, tmp_path / "knn.skops")
    again = load_estimator(tmp_path / "knn.skops")
    np.testing.assert_array_equal(again.predict_proba(QUERIES), clf.predict_proba(QUERIES))


def test_empty_demonstrations_auto_follows_the_share_of_texts_without_a_label(tiny_llama):
    params = {"n_shots": 3, "show_progress": False, "labels": ["weather", "sports", "politics"]}
    mostly_empty = [[] if i % 4 else labels for i, labels in enumerate(TRAIN_Y)]  # 3 of 4
    auto = LLMMultiLabelClassifier(tiny_llama, **params).fit(TRAIN, mostly_empty)
    assert auto.include_empty_demos_ is True
    explicit = LLMMultiLabelClassifier(tiny_llama, include_empty_demos=True, **params)
    assert auto.demonstrations_ == explicit.fit(TRAIN, mostly_empty).demonstrations_
    assert any(not labels for _, labels in auto.demonstrations_)
    labelled = LLMMultiLabelClassifier(tiny_llama, **params).fit(TRAIN, TRAIN_Y)
    assert labelled.include_empty_demos_ is False
    off = LLMMultiLabelClassifier(tiny_llama, include_empty_demos=False, **params)
    assert labelled.demonstrations_ == off.fit(TRAIN, TRAIN_Y).demonstrations_
    # the paper's sampler never shows an empty answer
    official = LLMMultiLabelClassifier(tiny_llama, protocol="official", **params)
    assert official.fit(TRAIN, mostly_empty).include_empty_demos_ is False


@pytest.mark.parametrize("n_empty, expected", [(5, False), (6, True)])
def test_empty_demonstrations_auto_threshold_is_a_quarter(tiny_llama, n_empty, expected):
    y = [[] if i < n_empty else labels for i, labels in enumerate(TRAIN_Y)]  # of 24 texts
    clf = LLMMultiLabelClassifier(tiny_llama, n_shots=3, show_progress=False,
                                  labels=["weather", "sports", "politics"]).fit(TRAIN, y)
    assert clf.include_empty_demos_ is expected


def _annotated():
    """Two annotators with opposite habits: a1 labels weather only, a2 sports only."""
    labels, ids = [], []
    for chosen in TRAIN_Y:
        labels.append([[x for x in chosen if x == "weather"], [x for x in chosen if x == "sports"]])
        ids.append(["a1", "a2"])
    return labels, ids


def test_annotator_prompts_show_each_annotators_own_labels(tiny_llama):
    labels, ids = _annotated()
    clf = LLMMultiLabelClassifier(tiny_llama, n_shots=4, show_progress=False, max_new_tokens=6,
                                  demo_selection="annotator", include_empty_demos=True,
                                  labels=["weather", "sports", "politics"])
    clf.fit(TRAIN, TRAIN_Y, annotator_labels=labels, annotator_ids=ids)
    assert clf.prompt_annotators_ == ["a1", "a2"]
    shown = [{x for _, demo in demos for x in demo} for demos in clf.prompt_demonstrations_]
    assert shown[0] <= {"weather"} and shown[1] <= {"sports"} and shown[0] and shown[1]
    traces = clf.predict_steps(QUERIES)
    per_annotator = np.stack([t["prompt_probabilities"] for t in traces])
    assert per_annotator.shape == (len(QUERIES), 2, 3)
    np.testing.assert_allclose(clf.predict_proba(QUERIES), per_annotator.mean(axis=1))
    with pytest.raises(ValueError, match="one scorer spec cannot describe"):
        clf.scorer_spec("steps")


def test_annotator_prompts_bad_input(tiny_llama):
    labels, ids = _annotated()
    clf = LLMMultiLabelClassifier(tiny_llama, n_shots=2, show_progress=False,
                                  demo_selection="annotator")
    with pytest.raises(ValueError, match="needs annotator_labels and annotator_ids in fit"):
        clf.fit(TRAIN, TRAIN_Y, annotator_labels=labels)
    with pytest.raises(ValueError, match="one entry per text"):
        clf.fit(TRAIN, TRAIN_Y, annotator_labels=labels, annotator_ids=ids[:-1])
    with pytest.raises(ValueError, match="use n_prompts=1"):
        clf.set_params(n_prompts=2).fit(TRAIN, TRAIN_Y, annotator_labels=labels,
                                         annotator_ids=ids)
    many = [[["weather"]] * 1 for _ in TRAIN]
    many_ids = [[f"r{i % 12}"] for i in range(len(TRAIN))]
    with pytest.warns(DemonstrationWarning, match="12 annotators: one prompt each for the 10"):
        clf.set_params(n_prompts=1).fit(TRAIN, TRAIN_Y, annotator_labels=many,
                                         annotator_ids=many_ids)
    assert len(clf.prompt_annotators_) == 10
    for missing in (None, float("nan"), " "):
        unnamed = [list(row) for row in ids]
        unnamed[3][1] = missing
        with pytest.raises(ValueError, match=r"annotator_ids of text 3 \(entry 1\) is missing"):
            clf.fit(TRAIN, TRAIN_Y, annotator_labels=labels, annotator_ids=unnamed)
    from sklearn_llm_multilabel.datasets import make_bunch

    with pytest.raises(ValueError, match=r"annotator_ids of item 1 \(entry 0\) is missing"):
        make_bunch(["a", "b"], [[1], [0]], ["x"], annotator_labels=[[["x"]], [[]]],
                   annotator_ids=[["r1"], [None]])


def test_loaders_name_the_annotators(tmp_path):
    from sklearn_llm_multilabel.datasets import load_annotations, subset

    path = tmp_path / "long.csv"
    path.write_text("id,text,annotator,labels\n1,hi,ann7,a\n1,hi,ann2,\n2,yo,ann2,b\n")
    ds = load_annotations(path)
    assert ds.annotator_ids == [["ann7", "ann2"], ["ann2"]]
    assert ds.annotator_labels == [[["a"], []], [["b"]]]
    assert subset(ds, [1]).annotator_ids == [["ann2"]]
    wide = tmp_path / "wide.csv"
    wide.write_text("text,A1_a,A1_b,A2_a,A2_b\nhi,1,0,1,1\nyo,0,0,,\n")
    ds = load_annotations(wide, annotator_columns=r"(?P<annotator>A\d)_(?P<label>\w)")
    assert ds.annotator_ids == [["A1", "A2"], ["A1"]]
