"""``protocol="official"`` against an independent re-implementation of the released code.

The reference below is written from the description of the paper's released
code in ``../shared/PAPER_NOTES.md`` (§6), with transformers' own ``generate``
and none of the library's prompt, label-token or step helpers: prompt built
with string formatting and stripped, tokenised with the tokenizer's default
special tokens; one label token per label and for ``none``, found from the
tokenizer's character offsets where the query template is filled with that
label; greedy decoding stopping only at ``Input:``; steps from the
re-tokenised prompt + cut output; softmax over label + none logits; uniform
max when no step is found; comma-split hard labels.
"""

import random

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList

from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
from sklearn_llm_multilabel.exceptions import NoLabelStepWarning
from sklearn_llm_multilabel.testing import ScriptedCausalLM, make_tiny_model

from .conftest import LABEL_LISTS, LABELS, TEXTS

pytestmark = pytest.mark.filterwarnings(f"ignore::{NoLabelStepWarning.__module__}.NoLabelStepWarning")

INSTRUCTION = ("Classify the following inputs into none, one, or multiple the following labels "
               "per input: {labels}.")
TEMPLATE = "Input: {text}\nLabel(s): {labels}"
EPS = 1e-8
SEED = 3
QUERIES = ["the rain fell on the team", "snow and a vote", "sunny", "the minister won the game"]


def _reference_demonstrations(label_lists, n_shots, seed):
    multi = [i for i, row in enumerate(label_lists) if len(row) >= 2]
    single = [i for i, row in enumerate(label_lists) if len(row) == 1]
    half = n_shots // 2
    return random.Random(seed).sample(multi, half) + random.Random(seed).sample(single, n_shots - half)


def _reference_prompt(labels, demos, text):
    names = ", ".join(labels[:-1]) + " and " + labels[-1]
    lines = [INSTRUCTION.replace("{labels}", names)]
    for demo_text, demo_labels in demos:  # labels in the order of the label set
        written = ", ".join(name for name in labels if name in demo_labels) or "none"
        lines.append(TEMPLATE.format(text=demo_text, labels=written))
    lines.append(TEMPLATE.format(text=text, labels=""))
    return "\n".join(lines).strip()


def _label_token(tok, label):
    """The token at the label's character offset in the filled query template."""
    filled = TEMPLATE.format(text="dummy", labels=label).strip()
    start = filled.rindex(label)
    enc = tok(filled, add_special_tokens=False, return_offsets_mapping=True)
    for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        if a <= start < b:
            return token
    raise AssertionError("label offset not found")


class _Script(LogitsProcessor):
    """The script of :class:`ScriptedCausalLM`, as a logits processor for ``generate``:
    at the position ``length - 1 + g`` the logit of ``script[g]`` gets ``boost``."""

    def __init__(self, script, length, boost=50.0):
        self.script, self.length, self.boost = script, length, boost

    def __call__(self, input_ids, scores):
        g = input_ids.shape[1] - self.length
        if 0 <= g < len(self.script):
            scores = scores.clone()
            scores[:, self.script[g]] += self.boost
        return scores


def _reference(model, tok, labels, demos, text, script, length):
    prompt = _reference_prompt(labels, demos, text)
    prompt_ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # greedy: the processed scores are the scripted model's logits
        out = model.generate(prompt_ids, max_new_tokens=18, do_sample=False,
                             stop_strings="Input:", tokenizer=tok, output_scores=True,
                             logits_processor=LogitsProcessorList([_Script(script, length)]),
                             return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
    logits = torch.stack(out.scores, dim=1)[0].float().numpy()  # (generated, vocab)
    generated = out.sequences[0, prompt_ids.shape[1]:].tolist()
    output = tok.decode(generated, skip_special_tokens=True)
    cut = output[: output.index("Input:")] if "Input:" in output else output
    decoded_prompt = tok.decode(prompt_ids[0], skip_special_tokens=True)
    reids = tok(decoded_prompt + cut)["input_ids"][prompt_ids.shape[1]:]
    ids = [_label_token(tok, name) for name in [*labels, "none"]]
    firsts = sorted((reids.index(i), k) for k, i in enumerate(ids) if i in reids)
    steps, seen = [], set()
    for position, k in firsts:
        if position < len(logits) and position not in seen:  # scores exist for generated tokens
            seen.add(position)
            steps.append((position, k))
    label_logits = logits[:, ids]
    distributions = softmax(label_logits, axis=-1)
    if steps:
        p_max = np.maximum(distributions[[t for t, _ in steps]].max(axis=0)[:-1], EPS)
        t0 = steps[0][0]
    else:
        p_max = np.full(len(labels), 1 / len(labels))
        t0 = 0
    p_first = expit(label_logits[t0, :-1] - label_logits[t0, -1])
    items = [item.strip().lower() for item in cut.split(",")]
    p_hard = np.array([1 - EPS if name.lower() in items else EPS for name in labels])
    return {"steps": [k for _, k in steps], "max": p_max, "first": p_first, "hard": p_hard,
            "text": cut.strip()}


@pytest.fixture(scope="module")
def scripted_spec(tiny_tokenizer):
    """A tiny Llama scripted to write labels over several lines, then a new example."""
    model = make_tiny_model(tiny_tokenizer, "llama", seed=11)
    demos = _reference_demonstrations(LABEL_LISTS, 4, SEED)
    prompt = _reference_prompt(LABELS, [(TEXTS[i], LABEL_LISTS[i]) for i in demos], QUERIES[0])
    length = len(tiny_tokenizer(prompt)["input_ids"])
    script = tiny_tokenizer.encode( " sports, weather\nx, politics\nInput: more",
                                   add_special_tokens=False)
    register_model("tiny-scripted-official", ScriptedCausalLM(model, script, length),
                   tiny_tokenizer)
    return "tiny-scripted-official", model, script, length


def test_official_protocol_matches_an_independent_reference(scripted_spec, tiny_tokenizer):
    spec, model, script, length = scripted_spec
    clf = LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=4, random_state=SEED,
                                  instruction=INSTRUCTION, protocol="official", batch_size=2,
                                  show_progress=False)
    clf.fit(TEXTS, LABEL_LISTS)
    demos = _reference_demonstrations(LABEL_LISTS, 4, SEED)
    assert clf.demonstration_indices_.tolist() == demos
    assert clf.prompt_.replace("{text}", QUERIES[1]) == _reference_prompt(
        LABELS, [(TEXTS[i], LABEL_LISTS[i]) for i in demos], QUERIES[1])
    expected = [_reference(model, tiny_tokenizer, LABELS, [(TEXTS[i], LABEL_LISTS[i]) for i in demos],
                           q, script, length) for q in QUERIES]
    # the scripted text writes labels on invented lines: every one of them is a step
    assert expected[0]["steps"] == [1, 0, 2]
    traces = clf.predict_steps(QUERIES)
    assert [[LABELS.index(s) if s in LABELS else 3 for s in t["step_labels"]] for t in traces] \
        == [e["steps"] for e in expected]
    for aggregation in ("max", "first", "hard"):
        got = clf.set_params(aggregation=aggregation).predict_proba(QUERIES)
        np.testing.assert_allclose(got, np.stack([e[aggregation] for e in expected]),
                                   atol=1e-5, rtol=0, err_msg=aggregation)


def test_library_protocol_differs_where_documented(scripted_spec):
    """The default stops at the newline: only the first line's labels are steps."""
    spec, *_ = scripted_spec
    clf = LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=4, random_state=SEED,
                                  instruction=INSTRUCTION, show_progress=False)
    # the library's sampler draws other demonstrations: use the official ones to compare steps
    official = LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=4, random_state=SEED,
                                       instruction=INSTRUCTION, protocol="official",
                                       show_progress=False).fit(TEXTS, LABEL_LISTS)
    clf.fit(TEXTS, LABEL_LISTS)
    clf.demonstrations_ = official.demonstrations_
    [trace] = clf.predict_steps(QUERIES[:1])
    assert trace["step_labels"] == ["sports", "weather"]
    assert trace["parsed_labels"] == ["weather", "sports"]


def test_official_unary_prompt_is_the_released_one(scripted_spec):
    spec, *_ = scripted_spec
    clf = LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=4, random_state=SEED,
                                  protocol="official", show_progress=False).fit(TEXTS, LABEL_LISTS)
    parts = clf._breakdown_parts("unary")
    assert parts.prefix.startswith(
        'Classify the following question-label pairs as either "reasonable" or "unreasonable". '
        'Output either "reasonable" or "unreasonable" and nothing else.\n\nQuestion: ')
    assert "\nIs the label reasonable: reasonable\n\nQuestion: " in parts.prefix \
        or "\nIs the label reasonable: unreasonable\n\nQuestion: " in parts.prefix
    assert parts.suffixes == tuple(f"Label: {name}\nIs the label reasonable: "
                                   for name in [*LABELS, "none"])
    flags = [d[3] for d in clf.breakdown_demonstrations_]
    assert sorted(flags) == [False, False, True, True]
    binary = clf._breakdown_parts("binary")
    assert binary.prefix.startswith(
        "Classify the following question into one of the two following labels. Output either "
        '"a" or "b" depending on which label is better and nothing else.\n\n')
    assert all(s.endswith("Correct Label: ") for s in binary.suffixes)
    for aggregation in ("unary", "binary"):
        proba = clf.set_params(aggregation=aggregation).predict_proba(QUERIES[:2])
        assert proba.shape == (2, len(LABELS)) and np.all((proba > 0) & (proba < 1))


def test_official_answers_are_read_where_first_generated(tiny_tokenizer):
    """A query whose generation writes the answer token late is read at that position."""
    from sklearn_llm_multilabel._breakdown import build_unary_prompt
    from sklearn_llm_multilabel.backends._breakdown import BreakdownScorer
    from sklearn_llm_multilabel.backends._load import load_model

    model = make_tiny_model(tiny_tokenizer, "llama", seed=12)
    parts = build_unary_prompt(LABELS, TEXTS, [(0, 0, 1, True, True)], protocol="official")
    answers = [tiny_tokenizer.encode(a, add_special_tokens=False)[0]
               for a in ("reasonable", "unreasonable")]
    prompt = tiny_tokenizer(parts.prefix + parts.middle("snow") + parts.suffixes[0])["input_ids"]
    filler = tiny_tokenizer.encode(" the", add_special_tokens=False)
    script = filler * 2 + [answers[1]]  # two other tokens, then "unreasonable"
    register_model("tiny-answers", ScriptedCausalLM(model, script, len(prompt)), tiny_tokenizer)
    scorer = BreakdownScorer(load_model("tiny-answers", device="cpu"), parts, max_text_tokens=64,
                             protocol="official")
    assert [ids[0] for ids in scorer.answer_tokens.first_ids] == answers
    [record] = scorer.score_queries(scorer.prepare_queries(["snow"]))
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=18, do_sample=False,
                             output_scores=True, return_dict_in_generate=True,
                             logits_processor=LogitsProcessorList([_Script(script, len(prompt))]),
                             pad_token_id=tiny_tokenizer.pad_token_id)
    generated = out.sequences[0, len(prompt):].tolist()
    first_hit = next(t for t, token in enumerate(generated) if token in answers)
    assert first_hit == 2
    np.testing.assert_allclose(record.answer_scores[0], out.scores[first_hit][0, answers].numpy(),
                               atol=1e-4)
    assert record.answer_scores[0, 1] > record.answer_scores[0, 0]


def test_bos_follows_the_tokenizer(tmp_path, tiny_tokenizer, tiny_llama):
    """A tokenizer that adds BOS gets it; one that does not (SmolLM2's) gets none."""
    from tokenizers.processors import TemplateProcessing

    clf = LLMMultiLabelClassifier(model="tiny-llama", n_shots=2, show_progress=False)
    clf.fit(TEXTS, LABEL_LISTS)
    assert clf._scorer().prefix_ids[0] != tiny_tokenizer.bos_token_id
    tiny_tokenizer.save_pretrained(tmp_path)
    with_bos = AutoTokenizer.from_pretrained(tmp_path)
    with_bos._tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", with_bos.bos_token_id)])
    assert with_bos("x")["input_ids"][0] == with_bos.bos_token_id
    register_model("tiny-with-bos", make_tiny_model(with_bos, "llama", seed=0), with_bos)
    clf = LLMMultiLabelClassifier(model="tiny-with-bos", n_shots=2, show_progress=False)
    clf.fit(TEXTS, LABEL_LISTS)
    assert clf._scorer().prefix_ids[0] == with_bos.bos_token_id
    assert clf._scorer().prefix_ids[1] != with_bos.bos_token_id
    forced = clf.set_params(add_bos=False).fit(TEXTS, LABEL_LISTS)
    assert forced._scorer().prefix_ids[0] != with_bos.bos_token_id


def test_official_protocol_needs_an_int_seed_and_a_refit(tiny_llama):
    clf = LLMMultiLabelClassifier(model="tiny-llama", n_shots=2, protocol="official",
                                  random_state=np.random.RandomState(0), show_progress=False)
    with pytest.raises(ValueError, match="random_state must be an int"):
        clf.fit(TEXTS, LABEL_LISTS)
    clf.set_params(random_state=0).fit(TEXTS, LABEL_LISTS)
    clf.set_params(protocol="library")
    with pytest.raises(ValueError, match="call fit again"):
        clf.predict_proba(TEXTS[:1])


def test_each_protocol_choice_alone(scripted_spec):
    """Every choice of the official protocol can be switched on its own (benchmarks/fidelity.py)
    and each one changes only what it names; the choices enter the scorer's fingerprint."""
    from sklearn_llm_multilabel.scoring import fill as score_texts
    from sklearn_llm_multilabel.store._files import StepCache

    spec, *_ = scripted_spec
    clf = LLMMultiLabelClassifier(model=spec, labels=LABELS, n_shots=4, random_state=SEED,
                                  instruction=INSTRUCTION, protocol="official",
                                  show_progress=False).fit(TEXTS, LABEL_LISTS)

    def steps(**options):
        scorer = clf._scorer(**options)
        [record] = score_texts(scorer, StepCache(None), QUERIES[:1], batch_size=1)
        return scorer, [LABELS.index(s) if s in LABELS else 3 for s in
                        [([*LABELS, "none"])[k] for k in record.step_labels]], record

    official, official_steps, official_record = steps()
    assert official_steps == [1, 0, 2]  # labels on the invented lines count
    newline, newline_steps, newline_record = steps(stop_at_newline=True)
    assert newline_steps == [1, 0]  # only the first line
    # the released parser splits the whole cut on commas: "weather\nx" is no label
    assert set(official_record.parsed) == {"sports", "politics"}
    assert set(newline_record.parsed) == {"sports", "weather"}
    ids, ids_steps, _ = steps(retokenized_steps=False)
    assert ids_steps == official_steps  # same ids here: the generation re-tokenises the same
    lenient, _, lenient_record = steps(official_parse=False)
    assert set(lenient_record.parsed) == set(official_record.parsed)  # no quotes to strip here
    assert lenient._official_parse(' "sports", Weather')[0] == ["weather"]
    words, _, _ = steps(label_variants="word")
    assert any(len(v) > 1 for v in words.label_tokens.first_ids)
    assert all(len(v) == 1 for v in official.label_tokens.first_ids)
    prints = {s.fingerprint for s in (official, newline, ids, lenient, words)}
    assert len(prints) == 5
