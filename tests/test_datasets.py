import json

import numpy as np
import pytest

from sklearn_llm_multilabel.datasets import (
    get_data_home,
    load_annotations,
    load_counts,
    load_goemotions,
    load_hs_brexit,
    load_illustrative_topics,
    load_lewidi,
    load_mfrc,
    load_proportions,
    load_xed,
    train_test_split_bunch,
)
from sklearn_llm_multilabel.exceptions import DatasetFormatError, DatasetWarning


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_annotations_with_label_lists(tmp_path):
    path = write(tmp_path, "a.csv", "id,text,labels\n1,hi,\"a,b\"\n1,hi,a\n1,hi,\n2,yo,b\n")
    ds = load_annotations(path)
    assert ds.label_names == ["a", "b"]
    np.testing.assert_allclose(ds.target, [[2 / 3, 1 / 3], [0, 1]])
    np.testing.assert_array_equal(ds.target_gold, [[1, 0], [0, 1]])
    assert ds.n_annotators.tolist() == [3, 1] and ds.ids.tolist() == ["1", "2"]


def test_annotations_with_label_columns_tsv(tmp_path):
    path = write(tmp_path, "a.tsv", "id\ttext\tx\ty\n1\thi\t1\t0\n1\thi\t1\t1\n")
    ds = load_annotations(path, label_columns=["x", "y"])
    np.testing.assert_allclose(ds.target, [[1.0, 0.5]])


@pytest.mark.parametrize("content, kwargs, match", [
    ("id,text\n1,hi\n", {}, r"a\.csv:1: missing column\(s\) \['labels'\]"),
    ("id,text,labels\n1,hi,a\n1,other,a\n", {}, r"a\.csv:3: item '1' appears with another"),
    ("id,text,labels\n1,hi,zz\n", {"label_names": ["a"]}, r"a\.csv:2: unknown label"),
    ("id,text,x\n1,hi,2\n", {"label_columns": ["x"]}, r"a\.csv:2: column 'x' must be 0 or 1"),
    ("id,text,labels\n", {}, "no data rows"),
    ("id,text,labels\n1,hi\n", {}, r"a\.csv:2: expected 3 fields"),
])
def test_malformed_annotation_tables(tmp_path, content, kwargs, match):
    with pytest.raises(DatasetFormatError, match=match):
        load_annotations(write(tmp_path, "a.csv", content), **kwargs)


def test_counts_table_and_errors(tmp_path):
    path = write(tmp_path, "c.csv", "text,A,B,None\nx,1,2,0\ny,0,0,3\nz,1,1,0\n")
    ds = load_counts(path, label_columns={"a": "A", "b": "B"}, none_columns=["None"],
                     keep_total=3)
    np.testing.assert_allclose(ds.target, [[1 / 3, 2 / 3], [0, 0]])  # z sums to 2: dropped
    with pytest.raises(DatasetFormatError, match=r"c\.csv:2: column 'A' must be a non-negative"):
        load_counts(write(tmp_path, "c.csv", "text,A\nx,-1\n"), label_columns={"a": "A"},
                    n_annotators=3)
    with pytest.raises(DatasetFormatError, match="exceeds the 2 annotators"):
        load_counts(write(tmp_path, "c.csv", "text,A\nx,3\n"), label_columns={"a": "A"},
                    n_annotators=2)
    with pytest.raises(ValueError, match="n_annotators or keep_total"):
        load_counts(path, label_columns={"a": "A"})


def test_lewidi_reader_and_errors(tmp_path):
    good = ('{"1": {"text": "t", "annotations": "1,0,No", '
            '"other_info": {"other annotations": {"agg": "1,1,1"}}}}')
    ds = load_lewidi(write(tmp_path, "l.json", good), label_streams={"hate": None, "agg": "agg"})
    np.testing.assert_allclose(ds.target, [[1 / 3, 1.0]])
    bad = good.replace('"1,1,1"', '"1,x,1"')
    with pytest.raises(DatasetFormatError, match="annotation 'x' is not 0/1"):
        load_lewidi(write(tmp_path, "l.json", bad), label_streams={"hate": None, "agg": "agg"})
    with pytest.raises(DatasetFormatError, match="different lengths"):
        load_lewidi(write(tmp_path, "l.json", good.replace('"1,1,1"', '"1,1"')),
                    label_streams={"hate": None, "agg": "agg"})
    with pytest.raises(DatasetFormatError, match=r"l\.json:1: invalid JSON"):
        load_lewidi(write(tmp_path, "l.json", "{oops"), label_streams={"hate": None})


def test_split_helper_is_seeded():
    ds = load_illustrative_topics()
    a_train, a_test = train_test_split_bunch(ds, test_size=10, random_state=0)
    b_train, b_test = train_test_split_bunch(ds, test_size=10, random_state=0)
    assert a_test.data == b_test.data and len(a_train.data) == 30
    assert not set(a_train.ids) & set(a_test.ids)
    np.testing.assert_array_equal(a_test.target, ds.target[[list(ds.ids).index(i)
                                                            for i in a_test.ids]])


# --- the real datasets in ../shared/data -----------------------------------------
def _shared():
    try:
        return get_data_home()
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")


def test_mfrc():
    _shared()
    ds = load_mfrc()
    assert len(ds.data) == 13508 and ds.target.shape == (13508, 6)
    assert set(np.unique(ds.target * 3)) <= {0, 1, 2, 3}
    assert (ds.n_annotators == 3).all() and not ds.data[0].startswith(" ")


def test_hs_brexit():
    _shared()
    sizes = {split: len(load_hs_brexit(split).data) for split in ("train", "dev", "test")}
    assert sizes == {"train": 784, "dev": 168, "test": 168}
    ds = load_hs_brexit("train")
    assert ds.label_names == ["hateful", "aggressive", "offensive"]
    assert set(np.unique(ds.target * 6).round(6)) <= set(range(7))


def test_goemotions_and_xed_gold_only():
    _shared()
    go = load_goemotions("dev")
    assert len(go.data) == 5426 and go.target.shape[1] == 7 and go.gold_only
    assert set(np.unique(go.target)) <= {0.0, 1.0}
    full = load_goemotions("dev", pooled=False)
    assert full.target.shape == (5426, 28) and full.label_names[-1] == "neutral"
    # every text has at least one of the 28 labels; pooling drops neutral only
    assert (full.target.sum(axis=1) >= 1).all()
    assert ((full.target[:, :27].sum(axis=1) > 0) == (go.target.sum(axis=1) > 0)).all()
    xed = load_xed()
    assert len(xed.data) == 17528 and xed.target.shape[1] == 8
    assert (xed.target.sum(axis=1) >= 1).all()


def test_encoding_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,a\nfine,1\ncaf\u00e9,0\n".encode("latin-1"))
    with pytest.raises(DatasetFormatError, match=r"latin\.csv:3: not valid utf-8 text .*encoding"):
        load_proportions(path)
    ds = load_proportions(path, encoding="latin-1")
    assert ds.data == ["fine", "caf\u00e9"] and ds.target.tolist() == [[1.0], [0.0]]
    with pytest.raises(DatasetFormatError, match=r"latin\.csv:3: not valid utf-8"):
        load_counts(path, label_columns={"a": "a"}, n_annotators=1)


def test_proportion_tables(tmp_path):
    path = write(tmp_path, "p.csv", "text,care,purity\nbe kind,1,0.5\nhello,0,0\n")
    ds = load_proportions(path, label_columns=["purity", "care"])
    assert ds.label_names == ["purity", "care"] and ds.target.tolist() == [[0.5, 1.0], [0.0, 0.0]]
    with pytest.raises(DatasetFormatError, match=r"unknown label column\(s\) \['loyalty'\]; found "
                                                  r"\['text', 'care', 'purity'\]"):
        load_proportions(path, label_columns=["loyalty"])
    with pytest.raises(DatasetFormatError, match=r"p\.csv:2: column 'care' must be a proportion"):
        load_proportions(write(tmp_path, "p.csv", "text,care\nx,2\n"))
    with pytest.raises(DatasetFormatError, match="no data rows"):
        load_proportions(write(tmp_path, "p.csv", "text,care\n"))
    with pytest.raises(DatasetFormatError, match=r"p\.csv:1: no label columns besides 'text'"):
        load_proportions(write(tmp_path, "p.csv", "text\nhello\n"))


def test_lewidi_spellings_and_text_field(tmp_path):
    item = ('{{"1": {{"text": {text}, "annotations": "1,0", '
            '"other_info": {{"{key}": {{"agg": "1,1"}}}}}}}}')
    for key in ("other annotations", "other_annotations"):
        path = write(tmp_path, "l.json", item.format(text='"t"', key=key))
        ds = load_lewidi(path, label_streams={"hate": None, "agg": "agg"})
        np.testing.assert_allclose(ds.target, [[0.5, 1.0]])
    dialogue = '"{\\"prev\\": \\"hi\\", \\"reply\\": \\"go away\\"}"'
    path = write(tmp_path, "l.json", item.format(text=dialogue, key="other_annotations"))
    ds = load_lewidi(path, label_streams={"hate": None}, text_field="reply")
    assert ds.data == ["go away"]
    with pytest.raises(DatasetFormatError, match="text_field='nope' needs a text"):
        load_lewidi(path, label_streams={"hate": None}, text_field="nope")
    with pytest.raises(DatasetFormatError, match="lacks field"):
        load_lewidi(write(tmp_path, "l.json", item.format(text='"t"', key="others")),
                    label_streams={"agg": "agg"})


def test_wide_annotation_tables(tmp_path):
    """One row per item: annotator x label 0/1 columns, or one label-list column per
    annotator; empty cells are annotators who did not see the item."""
    path = write(tmp_path, "w.csv", "id,text,Annotator1_sexist,Annotator1_racist,"
                                    "Annotator2_sexist,Annotator2_racist,Annotator3_sexist,"
                                    "Annotator3_racist\n7,hi,1,0,1,1,,\n8,yo,0,0,0,1,1,1\n")
    ds = load_annotations(path, annotator_columns=r"(?P<annotator>Annotator\d+)_(?P<label>\w+)")
    assert ds.label_names == ["racist", "sexist"] and ds.ids.tolist() == ["7", "8"]
    np.testing.assert_allclose(ds.target, [[0.5, 1.0], [2 / 3, 1 / 3]])
    assert ds.n_annotators.tolist() == [2, 3]
    lists = write(tmp_path, "l.csv", "text,A1,A2,A3\nhi,\"a;b\",a,\nyo,,,b\n")
    ds = load_annotations(lists, annotator_columns=r"(?P<annotator>A\d)", separator=";",
                          label_names=["a", "b"])
    np.testing.assert_allclose(ds.target, [[1.0, 0.5], [0.0, 1.0]])
    assert ds.n_annotators.tolist() == [2, 1] and ds.ids.tolist() == ["2", "3"]
    with pytest.raises(DatasetFormatError, match=r"no column matches the annotator_columns "
                                                 r"pattern \(\?P<annotator>B\\d\); found"):
        load_annotations(lists, annotator_columns=r"(?P<annotator>B\d)")
    with pytest.raises(DatasetFormatError, match=r"l\.csv:2: unknown label\(s\) \['b'\]"):
        load_annotations(lists, annotator_columns=r"(?P<annotator>A\d)", separator=";",
                         label_names=["a"])
    bad = write(tmp_path, "b.csv", "text,A1_x\nhi,yes\n")
    with pytest.raises(DatasetFormatError, match=r"b\.csv:2: column 'A1_x' must be 0 or 1"):
        load_annotations(bad, annotator_columns=r"(?P<annotator>A\d)_(?P<label>\w)")
    empty = write(tmp_path, "e.csv", "text,A1\nhi,\n")
    with pytest.raises(DatasetFormatError, match=r"e\.csv:2: no annotator labelled this item"):
        load_annotations(empty, annotator_columns=r"(?P<annotator>A\d)")


WIDE = r"(?P<annotator>Annotator\d+)_(?P<label>\w+)"


def test_repeated_header_is_an_error_naming_column_and_positions(tmp_path):
    # the public ConvAbuse release repeats Annotator6_transphobic three times
    path = write(tmp_path, "c.csv", "text,Annotator6_sexist,Annotator6_transphobic,"
                                    "Annotator6_transphobic,Annotator6_transphobic\nhi,1,0,1,0\n")
    with pytest.raises(DatasetFormatError, match=r"c\.csv:1: repeated column name\(s\): "
                                                 r"'Annotator6_transphobic' at columns 3, 4, 5"):
        load_annotations(path, annotator_columns=WIDE)
    long = write(tmp_path, "l.csv", "id,text,labels,labels\n1,hi,a,b\n")
    with pytest.raises(DatasetFormatError, match=r"'labels' at columns 3, 4"):
        load_annotations(long)
    with pytest.raises(DatasetFormatError, match="repeated column"):
        load_proportions(write(tmp_path, "p.csv", "text,a,a\nhi,1,0\n"))


def test_wide_pattern_needs_named_groups(tmp_path):
    path = write(tmp_path, "w.csv", "text,Annotator1_a,Annotator1_b\nhi,1,0\nyo,0,1\n")
    with pytest.raises(ValueError, match=r"needs a named group 'annotator' \(and 'label' for "
                                         r"0/1 columns\), e\.g\. r'\(\?P<annotator>"):
        load_annotations(path, annotator_columns=r"Annotator(\d+)_(\w+)")
    # an annotator group alone over 0/1 columns would make labels "0" and "1"
    with pytest.raises(ValueError, match=r"w\.csv:2: column 'Annotator1_a' holds '1', a 0/1 "
                                         r"value, but .* has no named group 'label'"):
        load_annotations(path, annotator_columns=r"(?P<annotator>Annotator\d+)_\w+")
    with pytest.raises(ValueError, match="is not a regular expression"):
        load_annotations(path, annotator_columns=r"(?P<annotator>A")


def test_wide_columns_left_out_by_the_pattern_are_listed(tmp_path):
    path = write(tmp_path, "w.csv", "text,Annotator1_a,Annotator1_b,Annotator1_is-target,"
                                    "Annotator1_target-type,Annotator2_a,Annotator2_b,other\n"
                                    "hi,1,0,yes,group,1,1,x\n")
    with pytest.warns(DatasetWarning) as record:
        ds = load_annotations(path, annotator_columns=WIDE)
    assert len(record) == 1
    message = str(record[0].message)
    assert "2 column(s)" in message and "'other'" not in message
    assert "['Annotator1_is-target', 'Annotator1_target-type']" in message
    assert ds.label_names == ["a", "b"]
    np.testing.assert_allclose(ds.target, [[1.0, 0.5]])


def test_wide_repeated_annotations_policy(tmp_path):
    path = write(tmp_path, "r.csv", 'text,A1_x,A1_y,A2_x,A2_y\nhi,"0, 1",1,1,0\nyo,0,0,1,"1, 1"\n')
    pattern = r"(?P<annotator>A\d)_(?P<label>\w)"
    with pytest.raises(DatasetFormatError, match=r"r\.csv:2: column 'A1_x' holds 2 annotations "
                                                 r"\('0, 1'\); pass repeats='first'"):
        load_annotations(path, annotator_columns=pattern)
    expected = {"first": [[0.5, 0.5], [0.5, 0.5]], "any": [[1.0, 0.5], [0.5, 0.5]],
                "mean": [[0.75, 0.5], [0.5, 0.5]]}
    for repeats, target in expected.items():
        ds = load_annotations(path, annotator_columns=pattern, repeats=repeats)
        np.testing.assert_allclose(ds.target, target, err_msg=repeats)
    # mean: an annotator's label set keeps the labels whose mean is at least 0.5
    ds = load_annotations(path, annotator_columns=pattern, repeats="mean")
    assert ds.annotator_labels[0] == [["x", "y"], ["x"]]
    with pytest.raises(ValueError, match="repeats must be one of"):
        load_annotations(path, annotator_columns=pattern, repeats="last")


def test_long_table_refuses_a_repeated_item_annotator_pair(tmp_path):
    path = write(tmp_path, "a.csv", "id,annotator,text,labels\n1,ann1,hi,a\n1,ann2,hi,b\n"
                                    "2,ann1,yo,a\n1,ann1,hi,b\n")
    with pytest.raises(DatasetFormatError, match=r"a\.csv:5: annotator 'ann1' labels item '1' "
                                                 r"again \(first at line 2\)"):
        load_annotations(path)
    ds = load_annotations(path, annotator_column=None)
    assert ds.n_annotators.tolist() == [3, 1]
    other = write(tmp_path, "o.csv", "id,rater,text,labels\n1,r1,hi,a\n1,r1,hi,b\n")
    with pytest.raises(DatasetFormatError, match="annotator 'r1' labels item '1' again"):
        load_annotations(other, annotator_column="rater")
    with pytest.raises(DatasetFormatError, match=r"missing column\(s\) \['worker'\]"):
        load_annotations(other, annotator_column="worker")


def test_label_column_holding_json_is_an_error(tmp_path):
    for cell, kind in (('"[""a"", ""b""]"', "list"), ('"{""a"": 1}"', "object")):
        path = write(tmp_path, "j.csv", f"id,text,labels\n1,hi,{cell}\n")
        with pytest.raises(DatasetFormatError,
                           match=rf"j\.csv:2: column 'labels' holds a JSON {kind}"):
            load_annotations(path)


def test_lewidi_repeated_item_id_is_an_error(tmp_path):
    item = '{"text": "t", "annotations": "0,1", "other_info": {}}'
    path = write(tmp_path, "d.json", f'{{"1": {item}, "2": {item}, "1": {item}}}')
    with pytest.raises(DatasetFormatError, match=r"d\.json: item id\(s\) \['1'\] appear more "
                                                 "than once"):
        load_lewidi(path, label_streams={"x": None})
    nested = '{"text": "t", "annotations": "0,1", "annotations": "1,1", "other_info": {}}'
    path = write(tmp_path, "n.json", f'{{"1": {nested}}}')
    with pytest.raises(DatasetFormatError, match=r"field\(s\) \['annotations'\] appear more"):
        load_lewidi(path, label_streams={"x": None})


def test_the_guide_expands_a_python_literal_cell_into_a_long_table(tmp_path, monkeypatch):
    """The datasets guide's HateXplain recipe runs as written on a cell with single quotes."""
    import re
    from pathlib import Path

    import pandas as pd

    page = (Path(__file__).parents[1] / "docs" / "guide" / "datasets.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", page, re.S)
                if "literal_eval" in block)
    rows = [[1, "they are awful", [{"annotator_id": 1, "label": "offensive"},
                                   {"annotator_id": 2, "label": "normal"}]],
            [2, "a fine day", [{"annotator_id": 1, "label": "normal"}]]]
    pd.DataFrame(rows, columns=["id", "text", "annotators"]).to_csv(
        tmp_path / "hatexplain.csv", index=False)  # written with repr: single quotes
    assert "'label'" in (tmp_path / "hatexplain.csv").read_text()
    monkeypatch.chdir(tmp_path)
    scope = {"load_annotations": load_annotations}
    exec(code, scope)
    ds = scope["ds"]
    assert ds.label_names == ["normal", "offensive"] and ds.target.tolist() == [[0.5, 0.5],
                                                                                 [1.0, 0.0]]


# ------------------------------------------------------------ LeWiDi 2025
def _nli_item(annotations, soft=None, text=None):
    names = ["contradiction", "entailment", "neutral"]
    chosen = [set(v.split(",")) for v in annotations.values()]
    soft = soft or {n: round(sum(n in c for c in chosen) / len(chosen), 2) for n in names}
    return {"annotation task": "natural language inference",
            "text": text or {"context": "A man sleeps.", "statement": "A man is awake."},
            "annotators": ",".join(annotations), "annotations": annotations,
            "soft_label": {n: {"0": round(1 - p, 2), "1": p} for n, p in soft.items()},
            "split": "train", "lang": "en",
            "other_info": {"explanations": ["sleeping is not awake"]}}


def _write(path, items):
    import json

    path.write_text(json.dumps(items))
    return path


def test_lewidi2025_varierrnli_items_become_label_sets_with_their_annotators(tmp_path):
    from sklearn_llm_multilabel.datasets import load_lewidi2025, subset

    path = _write(tmp_path / "VariErrNLI_train.json", {
        "7": _nli_item({"Ann1": "contradiction", "Ann2": "contradiction,neutral",
                        "Ann3": "neutral"}),
        "9": _nli_item({"Ann1": "entailment", "Ann4": "entailment"},
                       text={"context": "Two  dogs\nrun.", "statement": "Animals move."})})
    (tmp_path / "VariErrNLI_annotators_meta.json").write_text(
        '{"Ann1": {"Age": "22",}, "Ann2": {"Age": "33"}}')  # the released file's trailing comma
    with pytest.warns(DatasetWarning, match="trailing commas"):
        ds = load_lewidi2025(path)
    assert ds.label_names == ["contradiction", "entailment", "neutral"]
    assert ds.data == ["Premise: A man sleeps. Statement: A man is awake.",
                       "Premise: Two dogs run. Statement: Animals move."]
    np.testing.assert_allclose(ds.target, [[0.67, 0, 0.67], [0, 1, 0]])
    assert ds.annotator_labels[0] == [["contradiction"], ["contradiction", "neutral"], ["neutral"]]
    assert ds.annotator_ids == [["Ann1", "Ann2", "Ann3"], ["Ann1", "Ann4"]]
    assert list(ds.ids) == ["7", "9"] and ds.n_annotators.tolist() == [3, 2]
    assert ds.annotator_metadata["Ann1"] == {"Age": "22"}
    assert ds.explanations == [["sleeping is not awake"]] * 2
    assert ds.fields[1]["statement"] == "Animals move."
    part = subset(ds, [1])
    assert part.explanations == [["sleeping is not awake"]] and part.fields == [ds.fields[1]]
    templated = load_lewidi2025(path, text_template="{context} [SEP] {statement}",
                                annotators_meta=None)
    assert templated.data[0] == "A man sleeps. [SEP] A man is awake."
    with pytest.raises(ValueError, match=r"names 'premise', which the item's text does not "
                                         r"have; its fields are \['context', 'statement'\]"):
        load_lewidi2025(path, text_template="{premise}", annotators_meta=None)
    assert templated.annotator_metadata == {}


def test_lewidi2025_strictness_names_the_item(tmp_path):
    from sklearn_llm_multilabel.datasets import load_lewidi2025

    good = {"Ann1": "neutral", "Ann2": "entailment"}
    cases = [
        ({"1": _nli_item(good, soft={"contradiction": 0, "entailment": 0.5, "neutral": 0.9})},
         r"item '1': the soft label of \['neutral'\]"),
        ({"1": _nli_item({"Ann1": "neutral", "Ann2": "maybe"},
                         soft={"contradiction": 0, "entailment": 0, "neutral": 0.5})},
         r"item '1': annotator 'Ann2' chose unknown label\(s\) \['maybe'\]"),
        ({"1": {**_nli_item(good), "annotations": {}}}, r"item '1': no annotations"),
    ]
    for items, message in cases:
        with pytest.raises(DatasetFormatError, match=message):
            load_lewidi2025(_write(tmp_path / "x_train.json", items), annotators_meta=None)
    one = json.dumps(_nli_item(good))
    text = f'{{"1": {one}, "1": {one}}}'
    (tmp_path / "dup_train.json").write_text(text)
    with pytest.raises(DatasetFormatError, match=r"item id\(s\) \['1'\] appear more than once"):
        load_lewidi2025(tmp_path / "dup_train.json")


def test_lewidi2025_binary_sets_are_one_label_and_ordinal_ones_are_refused(tmp_path):
    from sklearn_llm_multilabel.datasets import load_lewidi2025

    mp = {"3": {"annotation task": "irony detection", "text": {"post": "Nice day.",
                                                               "reply": "Sure..."},
                "annotators": "Ann0,Ann10", "annotations": {"Ann0": "1", "Ann10": "0"},
                "soft_label": {"0.0": 0.5, "1.0": 0.5}, "other_info": {}}}
    ds = load_lewidi2025(_write(tmp_path / "MP_train.json", mp))
    assert ds.label_names == ["irony"] and ds.target.tolist() == [[0.5]]
    assert ds.annotator_labels == [[["irony"], []]] and ds.data == ["Post: Nice day. Reply: Sure..."]
    csc = {"5": {"annotation task": "sarcasm detection", "text": {"context": "a", "response": "b"},
                 "annotators": "Ann1", "annotations": {"Ann1": "2"},
                 "soft_label": {str(k): float(k == 2) for k in range(7)}, "other_info": {}}}
    with pytest.raises(DatasetFormatError, match=r"ordinal scale \(sarcasm rated from 1 to 6 "
                                                 r"\(CSC\)\).*not a multi-label task"):
        load_lewidi2025(_write(tmp_path / "CSC_train.json", csc))


def test_the_shared_varierrnli_files_load():
    from sklearn_llm_multilabel.datasets import load_lewidi2025

    try:
        folder = get_data_home() / "lewidi2025" / "VariErrNLI"
    except FileNotFoundError:
        pytest.skip("../shared/data is absent")
    if not folder.is_dir():
        pytest.skip("the LeWiDi 2025 files are absent")
    with pytest.warns(DatasetWarning, match="trailing commas"):
        sizes = {s: len(load_lewidi2025(folder / f"VariErrNLI_{s}.json").data)
                 for s in ("train", "dev", "test")}
    assert sizes == {"train": 388, "dev": 50, "test": 50}


def test_a_text_and_labels_table_without_ids_groups_rows_by_text(tmp_path):
    path = tmp_path / "first.csv"
    path.write_text('text,labels\nthe rain fell,weather\nthe team won,sports\n'
                    'the rain fell,"weather,sports"\n')
    ds = load_annotations(path)
    assert ds.data == ["the rain fell", "the team won"]
    assert ds.label_names == ["sports", "weather"] and ds.n_annotators.tolist() == [2, 1]
    assert ds.target.tolist() == [[0.5, 1.0], [1.0, 0.0]] and list(ds.ids) == ["2", "3"]
    with pytest.raises(DatasetFormatError, match=r"missing column\(s\) \['item'\]"):
        load_annotations(path, item_column="item")  # a column the user named must be there
