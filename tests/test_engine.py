"""The step-scoring engine on tiny random models (seconds, no download)."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_llm_multilabel import get_scoring_stats, load_model
from sklearn_llm_multilabel._prompts import build_prompt
from sklearn_llm_multilabel.backends import StepScorer, find_steps
from sklearn_llm_multilabel.backends._labels import LabelTokens, reduce_label_logits
from sklearn_llm_multilabel.exceptions import (
    ContextLengthError,
    LabelTokenWarning,
    TruncationWarning,
)
from sklearn_llm_multilabel.testing import ScriptedCausalLM

from .conftest import LABELS, TEXTS


def make_scorer(spec, labels=LABELS, demos=None, max_new_tokens=12, max_text_tokens=64,
                model=None, **options):
    loaded = load_model(spec, device="cpu")
    if model is not None:
        loaded = type(loaded)(model, loaded.tokenizer, loaded.fingerprint + "-scripted",
                              loaded.spec, loaded.device, loaded.dtype)
    if demos is None:
        demos = [(TEXTS[0], ["weather"]), (TEXTS[2], ["weather", "sports"])]
    parts = build_prompt(labels, demos)
    return StepScorer(loaded, parts, labels, "none", "comma", answer_lead="\nLabel(s): ",
                      max_new_tokens=max_new_tokens, max_text_tokens=max_text_tokens, **options)


def assert_same_records(a, b, atol=1e-5):
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.generated_ids, rb.generated_ids)
        np.testing.assert_allclose(ra.position_scores, rb.position_scores, atol=atol, rtol=0)
        np.testing.assert_allclose(ra.label_mass, rb.label_mass, atol=atol, rtol=0)
        np.testing.assert_allclose(ra.hidden, rb.hidden, atol=atol, rtol=0)
        np.testing.assert_array_equal(ra.step_positions, rb.step_positions)
        np.testing.assert_array_equal(ra.step_labels, rb.step_labels)
        assert ra.text == rb.text and ra.parsed == rb.parsed and ra.n_valid == rb.n_valid


@pytest.mark.parametrize("spec_fixture", ["tiny_llama", "tiny_gpt2"])
def test_batched_prefix_cached_equals_unbatched_full_recompute(spec_fixture, request):
    scorer = make_scorer(request.getfixturevalue(spec_fixture))
    queries = scorer.prepare_queries(TEXTS)
    reference = scorer.score_queries(queries, batch_size=1, use_prefix_cache=False)
    for batch_size in (1, 3, 8):
        fast = scorer.score_queries(queries, batch_size=batch_size, use_prefix_cache=True)
        assert_same_records(fast, reference)
    batched_full = scorer.score_queries(queries, batch_size=4, use_prefix_cache=False)
    assert_same_records(batched_full, reference)


def test_prefix_encoded_once_and_forward_calls_counted(tiny_llama):
    scorer = make_scorer(tiny_llama)
    queries = scorer.prepare_queries(TEXTS)
    scorer.score_queries(queries, batch_size=3)
    scorer.score_queries(queries, batch_size=3)
    stats = get_scoring_stats()
    assert stats["prefix_encodings"] == 1
    assert stats["texts_scored"] == 2 * len(TEXTS)
    assert stats["forward_calls"] > stats["prefix_encodings"]


def test_records_keep_input_order(tiny_llama):
    scorer = make_scorer(tiny_llama)
    queries = scorer.prepare_queries(TEXTS)
    together = scorer.score_queries(queries, batch_size=8)
    alone = [scorer.score_queries([q], batch_size=1)[0] for q in queries]
    assert_same_records(together, alone)


def _scripted(spec, text, continuation, max_new_tokens=12, labels=LABELS):
    """A scorer whose model writes ``continuation`` after the prompt of ``text``."""
    base = make_scorer(spec, labels=labels, max_new_tokens=max_new_tokens)
    tok = base.tokenizer
    query = base.prepare_queries([text])[0]
    prompt_len = len(base.prefix_ids) + len(tok.encode(query, add_special_tokens=False))
    script = tok.encode(continuation, add_special_tokens=False)
    model = ScriptedCausalLM(base.model, script, prompt_len)
    return make_scorer(spec, labels=labels, max_new_tokens=max_new_tokens, model=model), query


def test_steps_found_on_scripted_generation(tiny_llama):
    scorer, query = _scripted(tiny_llama, "storm and goal", " sports, weather, sports\n")
    [record] = scorer.score_queries([query])
    tok = scorer.tokenizer
    gen = tok.convert_ids_to_tokens(record.generated_ids.tolist())
    assert gen[: record.n_valid] == ["Ġsports", ",", "Ġweather", ",", "Ġsports"]
    assert gen[record.n_valid] == "Ċ"  # the stop position is kept for diagnostics
    # steps: sports at 0, weather at 2; the repeated "sports" adds no step
    assert record.step_positions.tolist() == [0, 2]
    assert record.step_labels.tolist() == [LABELS.index("sports"), LABELS.index("weather")]
    assert record.text == "sports, weather, sports"
    assert record.parsed == ("weather", "sports")


def test_step_scores_are_variant_max_of_the_model_logits(tiny_llama):
    scorer, query = _scripted(tiny_llama, "storm and goal", " sports, weather\n")
    [record] = scorer.score_queries([query])
    tok = scorer.tokenizer
    ids = scorer.prefix_ids + tok.encode(query, add_special_tokens=False)
    full = torch.tensor([ids + record.generated_ids.tolist()])
    scripted = scorer.model
    with torch.no_grad():
        logits = scripted.inner(input_ids=full).logits[0, len(ids) - 1:, :].clone()
    for g, token in enumerate(scripted.script[: len(logits)]):
        logits[g, token] += scripted.boost
    for pos in range(len(record.generated_ids)):
        expected = [max(float(logits[pos, v]) for v in variants)
                    for variants in scorer.label_tokens.first_ids]
        np.testing.assert_allclose(record.position_scores[pos], expected, atol=1e-4)
    # the variants are the word-initial forms (leading space, capitalised) and in-context tokens
    sports = scorer.label_tokens.first_ids[LABELS.index("sports")]
    for form in (" sports", " Sports"):
        assert tok.encode(form, add_special_tokens=False)[0] in sports


def test_bare_fragments_are_not_label_variants(tiny_tokenizer):
    """A form without its leading space often starts with a fragment shared by other words."""
    from sklearn_llm_multilabel.backends import build_label_tokens

    def first(text):
        return tiny_tokenizer.encode(text, add_special_tokens=False)[0]

    labels = ["equality", "care"]
    assert tiny_tokenizer.decode([first("equality")]) == "eq"  # a fragment of this tokenizer
    assert tiny_tokenizer.decode([first("care")]) == "c"
    tokens = build_label_tokens(tiny_tokenizer, labels, "none", answer_lead="\nLabel(s): ",
                                label_format="comma")
    for label, variants in zip(labels, tokens.first_ids):
        assert first(" " + label) in variants
        assert first(label) not in variants
    official = build_label_tokens(tiny_tokenizer, labels, "none", answer_lead="\nLabel(s): ",
                                  label_format="comma", variants="in_context")
    assert official.first_ids[:2] == ((first(" equality"),), (first(" care"),))


def test_multi_token_label_and_stop_at_example_prefix(tiny_llama):
    labels = ["proportionality", "weather"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelTokenWarning)
        scorer, query = _scripted(tiny_llama, "fair share", " proportionality Input: x",
                                  labels=labels)
    first = scorer.label_tokens.sequences[0]
    assert max(len(seq) for seq in first) > 1  # really a multi-token label
    [record] = scorer.score_queries([query])
    assert record.step_labels.tolist() == [0]
    assert record.text == "proportionality"
    gen = scorer.tokenizer.decode(record.generated_ids[: record.n_valid].tolist())
    assert "Input" not in gen


def test_no_step_falls_back_to_first_position(tiny_llama):
    scorer, query = _scripted(tiny_llama, "hello", "\n")
    [record] = scorer.score_queries([query])
    assert not record.has_steps and record.n_valid == 0
    np.testing.assert_array_equal(record.step_scores, record.position_scores[:1])


def test_reduce_label_logits_takes_max_over_variants():
    logits = torch.tensor([[0.0, 5.0, -1.0, 2.0, 3.0]])
    tokens = LabelTokens(("a", "b", "none"), ((1, 2), (3,), (4, 0)), (), {})
    idx, valid = (torch.as_tensor(a) for a in tokens.index_matrix())
    np.testing.assert_array_equal(reduce_label_logits(logits, idx, valid), [[5.0, 2.0, 3.0]])


def test_find_steps_disambiguates_shared_first_tokens():
    # labels "an-ger" (7, 8) and "an-ticipation" (7, 9) share token 7
    tokens = LabelTokens(("anger", "anticipation", "none"), ((7,), (7,), (3,)),
                         (((7, 8),), ((7, 9),), ((3,),)), {7: ("anger", "anticipation")})
    positions, labels = find_steps([7, 9, 5, 7, 8], 5, tokens)
    assert positions.tolist() == [0, 3] and labels.tolist() == [1, 0]
    positions, labels = find_steps([7, 9, 5, 7, 8], 3, tokens)  # stop before 2nd label
    assert positions.tolist() == [0]


def test_shared_first_token_warns_with_names(tiny_llama):
    with pytest.warns(LabelTokenWarning, match="weather.*weatherman|weatherman.*weather"):
        make_scorer(tiny_llama, labels=["weather", "weatherman"])


def test_truncation_warns_with_count(tiny_llama):
    scorer = make_scorer(tiny_llama, max_text_tokens=4)
    with pytest.warns(TruncationWarning, match="2 of 3 texts"):
        queries = scorer.prepare_queries(["snow", TEXTS[2], TEXTS[4]])
    n_tokens = len(scorer.tokenizer.encode(queries[1][len("Input: "):-len("\nLabel(s):")],
                                           add_special_tokens=False))
    assert n_tokens <= 4


def test_context_length_errors(tiny_llama):
    long_demo = [(" ".join(["rain"] * 1100), ["weather"])]
    with pytest.raises(ContextLengthError, match="prefix"):
        make_scorer(tiny_llama, demos=long_demo, max_text_tokens=5000)
    scorer = make_scorer(tiny_llama, max_text_tokens=5000)
    queries = scorer.prepare_queries(["rain " * 1100])
    with pytest.raises(ContextLengthError, match="Text 0"):
        scorer.score_queries(queries)


def test_registered_model_is_never_modified(tiny_tokenizer):
    """The library scores with its own view: the user's object keeps its state."""
    from sklearn_llm_multilabel import register_model
    from sklearn_llm_multilabel.testing import make_tiny_model

    user_model = make_tiny_model(tiny_tokenizer, "gpt2", seed=3)
    user_model.train()
    implementation = user_model.config._attn_implementation
    register_model("tiny-user-owned", user_model, tiny_tokenizer)
    scorer = make_scorer("tiny-user-owned")
    records = scorer.score_queries(scorer.prepare_queries(TEXTS[:2]))
    assert user_model.training and user_model.config._attn_implementation == implementation
    assert not scorer.model.training and scorer.model is not user_model
    assert scorer.model.transformer.wte.weight is user_model.transformer.wte.weight  # no copy
    assert torch.is_grad_enabled()
    user_model.eval()
    reference = make_scorer("tiny-user-owned").score_queries(scorer.prepare_queries(TEXTS[:2]),
                                                             use_prefix_cache=False)
    assert_same_records(records, reference)


def test_library_model_left_in_training_mode_scores_in_eval_mode(tiny_llama):
    scorer = make_scorer(tiny_llama)
    queries = scorer.prepare_queries(TEXTS[:2])
    expected = scorer.score_queries(queries)
    scorer.model.train()
    assert_same_records(scorer.score_queries(queries), expected)
    assert not scorer.model.training


def test_long_demonstrations_are_truncated_with_a_warning(tiny_llama):
    from sklearn_llm_multilabel import LLMMultiLabelClassifier

    texts = ["rain " * 50, "goal " * 50, "sunny", "vote"]
    with pytest.warns(TruncationWarning, match="1 of 2 demonstrations exceed"):
        clf = LLMMultiLabelClassifier(model=tiny_llama, n_shots=2, max_text_tokens=8,
                                      show_progress=False)
        clf.fit(texts, [["weather", "sports"], ["sports", "weather"], ["weather"], ["politics"]])
    assert all(len(t.split()) <= 8 for t, _ in clf.demonstrations_)


def test_a_long_text_is_cut_without_tokenising_it_whole(tiny_tokenizer, monkeypatch):
    """The cut of a long text equals the cut of its whole tokenisation, and the tokenizer
    never sees more than a bounded prefix of it."""
    import random

    from sklearn_llm_multilabel.backends import _text
    from sklearn_llm_multilabel.backends._seal import SealedEncoder

    rng = random.Random(0)
    words = "the rain fell team game won sunny day snow vote minister match".split()
    texts = [" ".join(rng.choice(words) for _ in range(n)) for n in (3, 50, 5_000, 200_000)]
    sealer = SealedEncoder(tiny_tokenizer)
    whole = [sealer.encode([t], [[(0, len(t))]])[0] for t in texts]
    seen = []
    encode = SealedEncoder.encode

    def spy(self, batch, spans):
        seen.extend(len(t) for t in batch)
        return encode(self, batch, spans)

    monkeypatch.setattr(SealedEncoder, "encode", spy)
    for budget in (1, 10, 256):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            cut = _text.truncate_texts(tiny_tokenizer, texts, budget, sealer=sealer)
        expected = [t if len(ids) <= budget else tiny_tokenizer.decode(ids[:budget])
                    for t, ids in zip(texts, whole)]
        assert cut == expected
    assert max(seen) < 100_000 < len(texts[-1])
