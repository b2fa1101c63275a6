import numpy as np
import pytest

from sklearn_llm_multilabel._prompts import (
    build_prompt,
    format_labels,
    parse_labels,
    select_demonstrations,
)
from sklearn_llm_multilabel.exceptions import DemonstrationWarning

NAMES = ["care", "purity", "loyalty"]


@pytest.mark.parametrize("fmt", ["comma", "json"])
@pytest.mark.parametrize("labels", [["care"], ["care", "purity"], []])
def test_format_parse_round_trip(fmt, labels):
    assert parse_labels(format_labels(labels, fmt), NAMES, fmt) == (labels, [])


def test_parse_is_case_insensitive_orders_and_reports_unknown():
    assert parse_labels(" Purity, CARE, fairness", NAMES, "comma") == (
        ["care", "purity"], ["fairness"]
    )
    assert parse_labels('{"label": ["loyalty", "x"]', NAMES, "json") == (["loyalty"], ["x"])


def test_build_prompt_matches_paper_layout():
    parts = build_prompt(
        NAMES, [("Be kind.", ["care"]), ("Stay clean.", ["purity", "care"])],
        instruction="Classify into: {labels}.",
    )
    assert parts.prefix + parts.query("Hi") == (
        "Classify into: care, purity and loyalty.\n"
        "Input: Be kind.\nLabel(s): care\n"
        "Input: Stay clean.\nLabel(s): purity, care\n"
        "Input: Hi\nLabel(s):"
    )
    assert parts.stop_string == "Input:"
    assert parts.add_bos is None  # the tokenizer's default, as the paper's released code


def test_build_prompt_json_and_zero_shots():
    parts = build_prompt(NAMES, [], label_format="json")
    assert parts.prefix.endswith("loyalty.\n")
    parts = build_prompt(NAMES, [("a", [])], label_format="json")
    assert 'Label(s): {"label": ["none"]}\n' in parts.prefix


def test_chat_template_renderer_wraps_the_prompt():
    parts = build_prompt(NAMES, [("a", ["care"])],
                         chat_template_renderer=lambda m: f"<user>{m}</user><assistant>")
    full = parts.prefix + parts.query("text")
    assert full.startswith("<user>Classify")
    assert full.endswith("Input: text\nLabel(s):</user><assistant>")
    assert parts.add_bos is False


@pytest.mark.parametrize("template, match", [
    ("Input: {text}", r"\{labels\} exactly once"),
    ("{labels} {text}", "after"),
    ("{text} -> {labels}", "non-empty prefix"),
])
def test_bad_templates(template, match):
    with pytest.raises(ValueError, match=match):
        build_prompt(NAMES, [], example_template=template)


def _gold():
    rng = np.random.default_rng(0)
    counts = np.r_[np.zeros(10), np.ones(20), np.full(20, 2)].astype(int)
    Y = np.zeros((50, 4), int)
    for i, c in enumerate(counts):
        Y[i, rng.choice(4, c, replace=False)] = 1
    return Y


def test_demonstrations_follow_paper_sampler():
    Y = _gold()
    idx = select_demonstrations(Y, 10, random_state=0)
    counts = Y[idx].sum(axis=1)
    assert len(idx) == len(set(idx)) == 10
    assert (counts >= 2).sum() == 5 and (counts == 1).sum() == 5
    np.testing.assert_array_equal(idx, select_demonstrations(Y, 10, random_state=0))
    assert not np.array_equal(idx, select_demonstrations(Y, 10, random_state=1))


def test_demonstrations_with_empty_examples():
    Y = _gold()
    counts = Y[select_demonstrations(Y, 9, include_empty=True, random_state=0)].sum(axis=1)
    assert (counts == 0).sum() == 3 and (counts == 1).sum() == 3 and (counts >= 2).sum() == 3


def test_demonstrations_zero_shots_and_shortfall():
    Y = _gold()
    assert len(select_demonstrations(Y, 0)) == 0
    with pytest.warns(DemonstrationWarning, match=r"n_shots=40 asks for demonstration texts 20 "
                                                  r"with several labels and 20 with one label, "
                                                  r".*the prompt shows all 30 there are; lower "
                                                  r"n_shots to 30 to silence this\."):
        idx = select_demonstrations(Y[10:40], 40, random_state=0)
    assert len(idx) == 30


def test_empty_instruction_leaves_no_leading_whitespace():
    parts = build_prompt(NAMES, [("a", ["care"])], instruction="")
    assert parts.prefix == "Input: a\nLabel(s): care\n"
    assert build_prompt(NAMES, [], instruction="").prefix == ""


def test_short_demonstrations_say_when_most_texts_have_no_label():
    """The warning says what a shortfall means and what to do when empty texts dominate."""
    Y = np.zeros((300, 2), dtype=int)
    Y[:20, 0] = 1  # 20 single-label texts, 5 multi, 275 with none
    Y[20:25] = 1
    with pytest.warns(DemonstrationWarning,
                      match=r"275 of 300 training texts have no label.*include_empty_demos=True"):
        select_demonstrations(Y, 40, random_state=0)
    Y[25:200, 1] = 1  # most texts labelled: a shortfall of multi-label texts only
    with pytest.warns(DemonstrationWarning) as record:
        select_demonstrations(Y, 40, random_state=0)
    assert "include_empty_demos" not in str(record[0].message)
