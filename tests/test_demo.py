from sklearn_llm_multilabel import demo


def test_demo_prints_every_aggregation(tiny_llama, capsys, recwarn):
    assert demo.main(["--model", tiny_llama, "--n-shots", "2"]) == 0
    out = capsys.readouterr().out
    for row in ("constant prior", "first", "max", "mean", "hard"):
        assert any(line.startswith(row) and len(line.split()) >= 4 for line in out.splitlines())
    assert "the model ran on 20 texts for all 4 aggregations" in out
    assert out.count("  generated:") == 4
