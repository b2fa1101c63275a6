"""Shared-prefix attention, suffix trees, early exit and automatic batch sizes."""

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from sklearn_llm_multilabel import get_scoring_stats
from sklearn_llm_multilabel.backends import _attention
from sklearn_llm_multilabel.backends._hf import SuffixTree
from sklearn_llm_multilabel.backends._labels import reduce_label_logits
from sklearn_llm_multilabel.exceptions import PerformanceWarning
from sklearn_llm_multilabel.testing import ScriptedCausalLM

from .conftest import TEXTS
from .test_engine import assert_same_records, make_scorer


class _Layer:
    layer_idx = 0


@pytest.mark.parametrize("n_queries", [1, 3, 9])  # 1 and 3: copy-free decode path; 9: SDPA
@pytest.mark.parametrize("kv_heads", [2, 6])  # grouped-query and plain multi-head
def test_shared_prefix_attention_equals_sdpa_over_the_concatenation(n_queries, kv_heads):
    torch.manual_seed(0)
    B, H, D, P, S = 3, 6, 8, 11, 12
    query = torch.randn(B, H, n_queries, D)
    key, value = torch.randn(B, kv_heads, S, D), torch.randn(B, kv_heads, S, D)
    pk, pv = torch.randn(1, kv_heads, P, D), torch.randn(1, kv_heads, P, D)
    mask = torch.rand(B, 1, n_queries, S) > 0.4  # some rows see none of their own keys
    mask[0, 0, :, :] = False
    shared = _attention.SharedPrefix(((pk, pv),))
    got, _ = _attention.shared_prefix_attention(_Layer(), query, key, value, mask, scaling=0.3,
                                                **{_attention.PREFIX_KWARG: shared})
    keys = torch.cat([pk.expand(B, -1, -1, -1), key], 2).repeat_interleave(H // kv_heads, 1)
    values = torch.cat([pv.expand(B, -1, -1, -1), value], 2).repeat_interleave(H // kv_heads, 1)
    full_mask = torch.cat([torch.ones(B, 1, n_queries, P, dtype=torch.bool), mask], 3)
    scores = (query @ keys.transpose(-1, -2) * 0.3).masked_fill(~full_mask, float("-inf"))
    expected = (torch.softmax(scores, -1) @ values).transpose(1, 2)
    assert got.shape == (B, n_queries, H, D)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_scoring_never_switches_the_attention_implementation(tiny_llama, tiny_tokenizer):
    """The library's model is switched once at load; scoring changes no config or global."""
    scorer = make_scorer(tiny_llama)
    assert scorer.model.config._attn_implementation == _attention.NAME
    seen = []
    original = scorer.model.forward

    def spy(*args, **kwargs):
        seen.append(scorer.model.config._attn_implementation)
        return original(*args, **kwargs)

    scorer.model.forward = spy
    try:
        scorer.score_queries(scorer.prepare_queries(TEXTS[:3]), batch_size=2)
    finally:
        del scorer.model.forward
    assert set(seen) == {_attention.NAME}
    assert scorer.model.config._attn_implementation == _attention.NAME


def test_without_a_prefix_the_registered_function_is_sdpa():
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8)
    mask = torch.ones(3, 3, dtype=torch.bool).tril()[None, None].expand(2, 1, 3, 3)
    got, _ = _attention.shared_prefix_attention(_Layer(), query, key, value, mask, scaling=0.5)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                                                scale=0.5).transpose(1, 2)
    torch.testing.assert_close(got, expected)


def test_suffix_tree_shares_leading_tokens_and_sees_only_ancestors():
    tree = SuffixTree.build([[1, 2, 3], [1, 2, 4], [1, 5], [6]])
    assert tree.tokens == (1, 2, 3, 4, 5, 6)
    assert tree.depths == (0, 1, 2, 2, 1, 0)
    assert tree.ends == (2, 3, 4, 5)
    expected = np.array([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 0, 1, 0, 0],  # token 4 does not see its sibling 3
        [1, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ], dtype=bool)
    np.testing.assert_array_equal(tree.visible, expected)
    with pytest.raises(ValueError, match="at least one token"):
        SuffixTree.build([[1], []])


@pytest.mark.parametrize("spec_fixture", ["tiny_llama", "tiny_gpt2"])
def test_step_scores_equal_transformers_generate(spec_fixture, request):
    """An independent reference: greedy ``generate`` on the full prompt, one text at a time."""
    scorer = make_scorer(request.getfixturevalue(spec_fixture), max_new_tokens=6)
    queries = scorer.prepare_queries(TEXTS)
    records = scorer.score_queries(queries, batch_size=8)
    config = GenerationConfig(max_new_tokens=6, do_sample=False, pad_token_id=scorer._pad_id,
                              eos_token_id=scorer.tokenizer.eos_token_id,
                              output_scores=True, return_dict_in_generate=True)
    for query, record in zip(queries, records):
        ids = scorer.prefix_ids + scorer.tokenizer.encode(query, add_special_tokens=False)
        prompt = torch.tensor([ids])
        with torch.no_grad():
            out = scorer.model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                        generation_config=config)
        n = len(record.generated_ids)
        assert out.sequences[0, len(ids): len(ids) + n].tolist() == record.generated_ids.tolist()
        scores = reduce_label_logits(torch.cat(out.scores)[:n].float(), scorer._idx, scorer._valid)
        np.testing.assert_allclose(record.position_scores, scores.numpy(), atol=1e-5, rtol=0)


class _RowCounter(ScriptedCausalLM):
    """Scripted model that records the number of rows of every forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = []

    def forward(self, input_ids=None, **kwargs):
        self.rows.append(input_ids.shape[0])
        return super().forward(input_ids=input_ids, **kwargs)


def test_finished_rows_leave_the_batch(tiny_llama):
    base = make_scorer(tiny_llama, max_new_tokens=10)
    queries = base.prepare_queries(TEXTS[:4])
    lengths = [len(base.tokenizer.encode(q, add_special_tokens=False)) for q in queries]
    target = int(np.argmin(lengths))  # the scripted row; the others run to max_new_tokens
    prompt_len = len(base.prefix_ids) + lengths[target]
    assert lengths.count(lengths[target]) == 1
    model = _RowCounter(base.model, base.tokenizer.encode(" weather\n", add_special_tokens=False),
                        prompt_len)
    scorer = make_scorer(tiny_llama, max_new_tokens=10, model=model)
    together = scorer.score_queries(queries, batch_size=4)
    assert together[target].text == "weather" and together[target].n_valid == 1
    assert len(together[target].generated_ids) == 2  # the stop position is kept
    # prefix encoding, the 4 texts, one decoding step with 4 rows, then the finished row is gone
    assert model.rows[:4] == [1, 4, 4, 3] and set(model.rows[4:]) == {3}
    alone = [scorer.score_queries([q], batch_size=1)[0] for q in queries]
    assert_same_records(together, alone)
    model.rows.clear()
    no_exit = make_scorer(tiny_llama, max_new_tokens=10, model=model, early_exit=False)
    assert_same_records(no_exit.score_queries(queries, batch_size=4), together)
    assert model.rows[0] == 1 and set(model.rows[1:]) == {4}  # its own prefix, then 4 rows


def test_auto_batch_size_follows_memory_and_length(tiny_llama, monkeypatch):
    scorer = make_scorer(tiny_llama)
    queries = scorer.prepare_queries(TEXTS)
    ids = scorer.tokenizer(queries, add_special_tokens=False)["input_ids"]
    longest = max(len(i) for i in ids)
    monkeypatch.setattr(scorer, "_memory_budget", lambda: 3 * scorer._row_bytes(longest))
    assert scorer.auto_batch_size(longest) == 3
    assert scorer.auto_batch_size(1) >= 3  # shorter texts, at least as many rows
    batches = scorer.batches(ids, "auto")
    assert sorted(i for b in batches for i in b) == list(range(len(TEXTS)))
    assert len(batches[0]) == 3 and all(len(b) >= 1 for b in batches)
    assert_same_records(scorer.score_queries(queries, batch_size="auto"),
                        scorer.score_queries(queries, batch_size=1))
    monkeypatch.setattr(scorer, "_memory_budget", lambda: 0)
    assert scorer.auto_batch_size(longest) == 1  # never below one row


def test_model_without_attention_backend_warns_and_stays_correct(tiny_llama):
    reference = make_scorer(tiny_llama)
    queries = reference.prepare_queries(TEXTS[:3])
    expected = reference.score_queries(queries, batch_size=3)
    wrapped = ScriptedCausalLM(reference.model, [], 0)
    wrapped._supports_attention_backend = False
    scorer = make_scorer(tiny_llama, model=wrapped)
    with pytest.warns(PerformanceWarning, match="re-encoded for every batch"):
        got = scorer.score_queries(queries, batch_size=3)
    assert_same_records(got, expected)
    assert get_scoring_stats()["prefix_encodings"] == 1  # only the reference encoded it


def test_records_own_their_arrays(tiny_llama):
    """Cached records must not be views that keep a whole batch's arrays alive."""
    scorer = make_scorer(tiny_llama)
    for record in scorer.score_queries(scorer.prepare_queries(TEXTS[:3]), batch_size=3):
        for name in ("position_scores", "generated_ids", "label_mass", "hidden"):
            assert getattr(record, name).base is None, name
