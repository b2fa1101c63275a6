"""LoRA fine-tuning inside LLMMultiLabelClassifier.fit, on a tiny model (seconds)."""

import pickle
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_llm_multilabel import (
    LLMMultiLabelClassifier,
    _state,
    clear_memory_cache,
    get_scoring_stats,
    register_model,
)
from sklearn_llm_multilabel._finetune import (
    TrainingExample,
    adapter_key,
    check_annotator_labels,
    majority_label_sets,
    sample_label_sets,
    target_label_sets,
    training_examples,
)
from sklearn_llm_multilabel.backends._finetune import _batch, _weighted_loss, encode_examples
from sklearn_llm_multilabel.backends._load import load_model, parameter_stamp
from sklearn_llm_multilabel.exceptions import ModelLoadError
from sklearn_llm_multilabel.metrics import alignment_scorers
from sklearn_llm_multilabel.testing import make_tiny_model

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytest.importorskip("peft")
pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn_llm_multilabel.exceptions.NoLabelStepWarning",
    "ignore::sklearn_llm_multilabel.exceptions.IdenticalGenerationsWarning",
    "ignore::sklearn_llm_multilabel.exceptions.FineTuningWarning",
)

PROPORTIONS = np.array([[1, 0, 0], [0, 2 / 3, 0], [1 / 3, 1, 0], [1, 0, 1 / 3],
                        [0, 0, 1], [2 / 3, 2 / 3, 0], [1, 0, 0], [1 / 3, 0, 1]])


def make_ft(spec="tiny-llama", **params):
    params = {"n_shots": 2, "show_progress": False, "max_new_tokens": 6, "finetune": "lora",
              "finetune_epochs": 1, "lora_rank": 2, **params}
    return LLMMultiLabelClassifier(model=spec, labels=LABELS, **params)


# --- targets and examples: pure functions against hand-computed values ----------
def test_majority_sets_take_labels_at_or_above_half():
    assert majority_label_sets(np.array([[0.5, 0.49, 1.0], [0, 0, 0]]), ["a", "b", "c"]) == \
        [["a", "c"], []]


def test_sampled_sets_match_the_proportions_exactly_when_n_sets_allows():
    Y = np.array([[2 / 3, 1 / 3, 0.5], [0, 1, 1 / 6]])
    sets = sample_label_sets(Y, ["a", "b", "c"], 6, np.random.RandomState(3))
    for row, text_sets in zip(Y, sets):
        assert len(text_sets) == 6
        freq = [np.mean([name in s for s in text_sets]) for name in "abc"]
        np.testing.assert_allclose(freq, row)


def test_weighted_target_sets_reproduce_the_proportions():
    sets = target_label_sets(PROPORTIONS, LABELS, "annotators", n_sets=6,
                             rng=np.random.RandomState(0))
    freq = [[sum(w for s, w in text if name in s) for name in LABELS] for text in sets]
    np.testing.assert_allclose(freq, PROPORTIONS)
    assert all(np.isclose(sum(w for _, w in text), 1.0) for text in sets)


def test_annotator_sets_are_merged_into_weighted_distinct_sets():
    out = target_label_sets(np.zeros((2, 2)), ["a", "b"], "annotators",
                            annotator_labels=[[["b", "a"], ["a", "b"], []], [["a"]]])
    assert out == [[(["a", "b"], 2 / 3), ([], 1 / 3)], [(["a"], 1.0)]]


def test_training_examples_write_label_lists_as_demonstrations_do():
    examples = training_examples(["Input: x\nLabel(s):", "Input: y\nLabel(s):"],
                                 [[(["a", "b"], 1.0)], [([], 0.5), (["b"], 0.5)]],
                                 label_format="comma", none_label="none", answer_lead=" ",
                                 answer_end="\n")
    assert [(e.answer, e.weight) for e in examples] == [(" a, b\n", 1.0), (" none\n", 0.5),
                                                        (" b\n", 0.5)]


def test_adapter_key_changes_with_every_input():
    ex = [TrainingExample("p", " a\n", 1.0)]
    base = adapter_key("fp", ex, {"rank": 8})
    assert adapter_key("fp", ex, {"rank": 8}) == base
    assert adapter_key("fp2", ex, {"rank": 8}) != base
    assert adapter_key("fp", [TrainingExample("p", " b\n", 1.0)], {"rank": 8}) != base
    assert adapter_key("fp", [TrainingExample("p", " a\n", 0.5)], {"rank": 8}) != base
    assert adapter_key("fp", ex, {"rank": 4}) != base


@pytest.mark.parametrize("value, message", [
    ("x", "one list of per-annotator"),
    ([[["a"]]] * 2, "2 rows but X has 1"),
    ([[]], "is empty"),
    ([[["zzz"]]], "not in the label set"),
    ([[[1]]], "must hold label names"),
])
def test_bad_annotator_labels_name_the_row(value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_annotator_labels(value, 1, ["a", "b"])


def test_weighted_loss_is_the_weighted_mean_of_per_example_answer_means():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, -100, 1, 2], [-100, 3, -100, -100]])
    weights = torch.tensor([1.0, 0.5])
    logp = torch.log_softmax(logits, -1)
    ex0 = -(logp[0, 1, 1] + logp[0, 2, 2]) / 2  # position t predicts label t + 1
    ex1 = -logp[1, 0, 3]
    expected = (1.0 * ex0 + 0.5 * ex1) / (2 * 0.75)
    torch.testing.assert_close(_weighted_loss(logits, labels, weights, 0.75), expected)


def test_batches_put_the_loss_on_answer_tokens_only():
    pairs = [([5, 6, 7], [8, 9]), ([5], [4])]
    ids, mask, labels, w = _batch(pairs, [1.0, 0.5], [0, 1], pad_id=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7, 8, 9], [5, 4, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 9], [-100, 4, -100, -100, -100]]
    assert w.tolist() == [1.0, 0.5]


def test_training_prompt_is_tokenised_as_the_engine_tokenises_the_scoring_prompt(tiny_llama):
    clf = LLMMultiLabelClassifier(tiny_llama, labels=LABELS, n_shots=2, show_progress=False)
    clf.fit(TEXTS, LABEL_LISTS)
    scorer = clf._scorer()
    query = scorer.prepare_queries([TEXTS[3]])[0]
    prefix, pairs, cut = encode_examples(scorer.tokenizer, [TrainingExample(query, " sports\n", 1.0)],
                                         scorer.parts.add_bos, scorer.parts.prefix, 512)
    assert cut == 0
    assert prefix == scorer.prefix_ids and pairs[0][0] == scorer.encode_queries([query])[0]


def test_long_queries_lose_their_start_and_keep_the_answer(tiny_llama):
    tok = load_model(tiny_llama, device="cpu").tokenizer
    _, pairs, cut = encode_examples(tok, [TrainingExample("rain " * 50, " sports\n", 1.0)], None,
                                    "", 20)
    answer = tok.encode(" sports\n", add_special_tokens=False)
    assert cut == 1 and len(pairs[0][0]) + len(pairs[0][1]) == 20 and pairs[0][1] == answer


def test_shared_prefix_training_forward_equals_full_sequences(tiny_llama):
    from peft import LoraConfig, get_peft_model

    from sklearn_llm_multilabel.backends._engine import cache_kwarg
    from sklearn_llm_multilabel.backends._finetune import _view, forward_logits

    base = load_model(tiny_llama, device="cpu")
    view = _view(base.model)
    view.config._attn_implementation = "sdpa"
    model = get_peft_model(view, LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))  # nonzero adapter
    prefix = [5, 9, 13, 21, 8]
    rows = [[30, 31, 32, 33], [40, 41]]
    ids = torch.tensor([rows[0], rows[1] + [0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    trainable = [p for p in model.parameters() if p.requires_grad]
    shared = forward_logits(model, prefix, ids, mask, cache_kwarg(view))
    (shared[0].sum() + shared[1, :2].sum()).backward()  # padded positions are never used
    shared_grads = [p.grad.clone() for p in trainable]
    model.zero_grad()
    full = [model(input_ids=torch.tensor([prefix + row])).logits[0, len(prefix):] for row in rows]
    (full[0].sum() + full[1].sum()).backward()
    torch.testing.assert_close(shared[0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared[1, :2], full[1], atol=1e-5, rtol=1e-5)
    for got, p in zip(shared_grads, trainable):
        torch.testing.assert_close(got, p.grad, atol=1e-4, rtol=1e-4)


# --- the estimator ----------------------------------------------------------------
def test_finetuning_lowers_the_training_loss(tiny_tokenizer):
    # the tiny model's output layer is scaled up so that its logits can leave uniform at all
    # (with 16 hidden units and weights of std 0.02 they cannot exceed about 0.3)
    model = make_tiny_model(tiny_tokenizer, "llama", seed=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
    register_model("tiny-ft-sharp", model, tiny_tokenizer)
    clf = make_ft("tiny-ft-sharp", finetune_epochs=10, finetune_learning_rate=3e-2,
                  finetune_batch_size=4, lora_rank=4).fit(TEXTS, LABEL_LISTS)
    loss = clf.finetune_loss_
    assert len(loss) == 10 * 2
    assert loss[-4:].mean() < 0.6 * loss[:4].mean()
    assert clf.n_finetune_examples_ == len(TEXTS)


def test_fine_tuned_model_scores_differently_and_base_is_untouched(tiny_llama):
    from sklearn_llm_multilabel.backends._load import _CUSTOM

    user_model = _CUSTOM[tiny_llama][0]
    flags = [p.requires_grad for p in user_model.parameters()]
    stamp, attn = parameter_stamp(user_model), user_model.config._attn_implementation
    frozen = LLMMultiLabelClassifier(tiny_llama, labels=LABELS, n_shots=2, show_progress=False,
                                     max_new_tokens=6).fit(TEXTS, LABEL_LISTS)
    before = frozen.predict_proba(TEXTS)
    base = load_model(tiny_llama)
    base_flags = [p.requires_grad for p in base.model.parameters()]
    tuned = make_ft(finetune_epochs=3, finetune_learning_rate=3e-2).fit(TEXTS, LABEL_LISTS)
    assert not np.allclose(tuned.predict_proba(TEXTS), before)
    clear_memory_cache()
    np.testing.assert_array_equal(frozen.predict_proba(TEXTS), before)
    assert [p.requires_grad for p in user_model.parameters()] == flags
    assert [p.requires_grad for p in base.model.parameters()] == base_flags
    assert parameter_stamp(user_model) == stamp
    assert user_model.config._attn_implementation == attn
    assert not base.model.training and load_model(tiny_llama) is base
    # the scoring model copies only the adapted weights; everything else is the base's storage
    merged = tuned._loaded_model().model
    shared = {n: p.data_ptr() for n, p in base.model.named_parameters()}
    for name, p in merged.named_parameters():
        same = p.data_ptr() == shared[name]
        assert same != name.endswith(("q_proj.weight", "v_proj.weight")), name


def test_a_one_step_fit_trains_the_adapter_and_warns(tiny_llama):
    """8 texts at batch 8 for one epoch: one optimiser step, at a non-zero learning rate."""
    from sklearn_llm_multilabel.backends._finetune import lr_factor
    from sklearn_llm_multilabel.exceptions import FineTuningWarning

    frozen = LLMMultiLabelClassifier(tiny_llama, labels=LABELS, n_shots=2, show_progress=False,
                                     max_new_tokens=6).fit(TEXTS, LABEL_LISTS)
    with pytest.warns(FineTuningWarning, match=r"takes 1 optimiser step\(s\) \(8 examples, "
                                               r"finetune_batch_size=8, finetune_epochs=1\)"):
        tuned = make_ft(finetune_batch_size=8, finetune_learning_rate=3e-2).fit(TEXTS, LABEL_LISTS)
    assert len(tuned.finetune_loss_) == 1
    lora_b = [w for name, w in tuned.adapter_weights_.items() if "lora_B" in name]
    assert lora_b and all(np.abs(w).max() > 0 for w in lora_b)
    assert np.abs(tuned.predict_proba(TEXTS) - frozen.predict_proba(TEXTS)).max() > 1e-6
    # every step of any schedule has a non-zero rate; warm-up then decay
    for total in (1, 2, 9, 10, 37):
        factors = [lr_factor(s, total, total // 10) for s in range(total)]
        assert min(factors) > 0 and max(factors) == 1.0


def test_finetune_none_is_the_frozen_model_exactly(tiny_llama):
    frozen = LLMMultiLabelClassifier(tiny_llama, labels=LABELS, n_shots=2, show_progress=False,
                                     max_new_tokens=6).fit(TEXTS, LABEL_LISTS)
    other = clone(frozen).set_params(lora_rank=3, finetune_epochs=5).fit(TEXTS, LABEL_LISTS)
    assert frozen.adapter_key_ is None and not hasattr(frozen, "adapter_weights_")
    assert frozen._loaded_model() is load_model(tiny_llama)
    assert frozen._scorer().fingerprint == other._scorer().fingerprint
    np.testing.assert_array_equal(frozen.predict_proba(TEXTS), other.predict_proba(TEXTS))
    assert get_scoring_stats()["adapters_trained"] == 0


def test_identical_refit_trains_nothing_from_memory_or_cache_dir(tiny_llama, tmp_path):
    clf = make_ft(cache_dir=tmp_path / "cache").fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba(TEXTS)
    refit = clone(clf).fit(TEXTS, LABEL_LISTS)
    assert get_scoring_stats()["adapters_trained"] == 1
    assert get_scoring_stats()["adapters_reused"] == 1
    clear_memory_cache()  # a new process would find the adapter on disk
    from_disk = clone(clf).fit(TEXTS, LABEL_LISTS)
    assert get_scoring_stats()["adapters_trained"] == 1
    assert refit.adapter_key_ == from_disk.adapter_key_ == clf.adapter_key_
    for name, w in clf.adapter_weights_.items():
        np.testing.assert_array_equal(from_disk.adapter_weights_[name], w)
    np.testing.assert_array_equal(from_disk.predict_proba(TEXTS), proba)


def test_training_is_deterministic(tiny_llama):
    a = make_ft(finetune_epochs=2).fit(TEXTS, LABEL_LISTS)
    clear_memory_cache()
    b = make_ft(finetune_epochs=2).fit(TEXTS, LABEL_LISTS)
    assert get_scoring_stats()["adapters_trained"] == 2
    np.testing.assert_array_equal(a.finetune_loss_, b.finetune_loss_)
    for name, w in a.adapter_weights_.items():
        np.testing.assert_array_equal(b.adapter_weights_[name], w)


@pytest.mark.parametrize("change", [
    {"lora_rank": 3}, {"lora_alpha": 4.0}, {"finetune_epochs": 2},
    {"finetune_learning_rate": 2e-3}, {"finetune_batch_size": 4}, {"finetune_targets": "annotators"},
    {"finetune_shots": 0}, {"random_state": 1}, {"lora_target_modules": ["q_proj"]},
    {"texts": True}, {"targets": True},
])
def test_any_change_trains_a_new_adapter_and_new_cache_keys(tiny_llama, change):
    y = PROPORTIONS
    first = make_ft().fit(TEXTS, y)
    texts, targets = list(TEXTS), y.copy()
    params = {k: v for k, v in change.items() if k not in ("texts", "targets")}
    if "texts" in change:
        texts[5] = texts[5] + " again"
    if "targets" in change:
        targets[4] = [0, 1, 1]
    second = clone(first).set_params(**params).fit(texts, targets)
    assert get_scoring_stats()["adapters_trained"] == 2
    assert second.adapter_key_ != first.adapter_key_
    assert second._scorer().fingerprint != first._scorer().fingerprint
    query = first._scorer().prepare_queries([TEXTS[0]])[0]
    assert second._scorer().query_key(query) != first._scorer().query_key(query)


def test_pickled_estimator_round_trips_with_identical_probabilities(tiny_llama):
    clf = make_ft(finetune_epochs=2, finetune_learning_rate=2e-2).fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba(TEXTS)
    blob = pickle.dumps(clf)
    base_bytes = sum(p.numel() * p.element_size() for p in load_model(tiny_llama).model.parameters())
    adapter_bytes = sum(w.nbytes for w in clf.adapter_weights_.values())
    assert len(blob) < adapter_bytes + base_bytes / 2  # the adapter travels, the base does not
    with _state.LOCK:
        _state.ADAPTED.clear()  # the reloaded estimator rebuilds its model from the weights
    clear_memory_cache()
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), proba)
    assert get_scoring_stats()["adapters_trained"] == 1


def test_a_cached_prediction_of_a_fine_tuned_estimator_builds_no_model(tiny_llama):
    from sklearn_llm_multilabel import reset_scoring_stats
    from sklearn_llm_multilabel.backends._load import clear_model_registry

    clf = make_ft().fit(TEXTS, LABEL_LISTS)
    proba = clf.predict_proba(TEXTS)
    blob = pickle.dumps(clf)
    clear_model_registry()  # forgets the merged model and the scorers, as a new process has none
    reset_scoring_stats()
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(TEXTS), proba)
    stats = get_scoring_stats()
    assert stats["weights_loaded"] == 0 and stats["texts_scored"] == 0


@pytest.mark.parametrize("kind", ["proportions", "indicators", "label lists"])
def test_every_target_format_fits(tiny_llama, kind):
    y = {"proportions": PROPORTIONS, "indicators": (PROPORTIONS >= 0.5).astype(int),
         "label lists": LABEL_LISTS}[kind]
    clf = make_ft(finetune_targets="annotators").fit(TEXTS, y)
    assert clf.predict_proba(TEXTS).shape == (len(TEXTS), 3)
    # 0/1 targets: one set per text. Proportions, 6 sets per text: rows 0, 4 and 6 give one
    # distinct set, rows 1, 2, 3 and 7 two, row 5 (2/3, 2/3) two to four depending on the draw
    distinct = {"proportions": range(13, 16), "indicators": [8], "label lists": [8]}[kind]
    assert clf.n_finetune_examples_ in distinct


def test_annotator_labels_are_the_annotators_targets(tiny_llama):
    sets = [[["weather"], [], ["weather", "sports"]]] + [[row] for row in LABEL_LISTS[1:]]
    clf = make_ft(finetune_targets="annotators").fit(TEXTS, LABEL_LISTS, annotator_labels=sets)
    assert clf.n_finetune_examples_ == len(TEXTS) + 2
    majority = make_ft().fit(TEXTS, LABEL_LISTS, annotator_labels=sets)  # ignored for majority
    assert majority.adapter_key_ == make_ft().fit(TEXTS, LABEL_LISTS).adapter_key_


@pytest.mark.parametrize("params, error, message", [
    ({"finetune": "qlora"}, InvalidParameterError, "finetune"),
    ({"lora_rank": 0}, InvalidParameterError, "lora_rank"),
    ({"lora_dropout": 1.0}, InvalidParameterError, "lora_dropout"),
    ({"finetune_learning_rate": 0}, InvalidParameterError, "finetune_learning_rate"),
    ({"finetune_epochs": 0}, InvalidParameterError, "finetune_epochs"),
    ({"finetune_targets": "soft"}, InvalidParameterError, "finetune_targets"),
    ({"finetune_shots": 3}, ValueError, "finetune_shots=3 is more than the 2"),
    ({"finetune_shots": -1}, InvalidParameterError, "finetune_shots"),
    ({"lora_target_modules": []}, ValueError, "lora_target_modules is empty"),
    ({"lora_target_modules": ["no_such_module"]}, ValueError, "no_such_module"),
])
def test_bad_finetuning_parameters_give_clear_errors(tiny_llama, params, error, message):
    with pytest.raises(error, match=message):
        make_ft(**params).fit(TEXTS, LABEL_LISTS)


def test_fine_tuning_without_peft_says_what_to_install(tiny_llama, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    with pytest.raises(ImportError, match=r"needs peft: pip install peft \(or the \[finetune\] extra"):
        make_ft().fit(TEXTS, LABEL_LISTS)


def test_changing_finetuning_parameters_after_fit_asks_for_a_refit(tiny_llama):
    clf = make_ft().fit(TEXTS, LABEL_LISTS)
    clf.set_params(aggregation="mean", threshold=0.3).predict_proba(TEXTS)  # free to change
    with pytest.raises(ValueError, match="lora_rank changed after fit"):
        clf.set_params(lora_rank=5).predict_proba(TEXTS)


def test_a_base_model_changed_after_fit_is_refused(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, "llama", seed=3)
    register_model("tiny-ft-mutable", model, tiny_tokenizer)
    clf = make_ft("tiny-ft-mutable").fit(TEXTS, LABEL_LISTS)
    with torch.no_grad():
        next(model.parameters()).mul_(2)
    with pytest.raises(ModelLoadError, match="not the one the adapter was trained on"):
        clf.predict_proba(TEXTS)


def test_grid_search_trains_one_adapter_per_fold(tiny_llama):
    folds = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(make_ft(), {"aggregation": ["max", "mean", "hard"], "threshold": [0.3, 0.6]},
                          cv=folds, scoring=alignment_scorers()["nll"])
    search.fit(TEXTS, PROPORTIONS)
    stats = get_scoring_stats()
    assert stats["adapters_trained"] == 2 + 1  # each fold, then the refit on all the data
    assert stats["adapters_reused"] == 6 * 2 - 2
    assert search.best_estimator_.adapter_key_ is not None


def test_the_finetuning_parameters_are_listed_explicitly():
    from sklearn_llm_multilabel._classifier import FINETUNE_PARAMS

    names = LLMMultiLabelClassifier().get_params()
    assert set(FINETUNE_PARAMS) == {n for n in names if n.startswith(("finetune", "lora_"))}
    assert len(FINETUNE_PARAMS) == 12
