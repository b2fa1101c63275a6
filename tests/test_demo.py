from sklearn_llm_multilabel import demo


def test_demo_prints_every_aggregation(tiny_llama, capsys, recwarn):
    assert demo.main(["--model", tiny_llama, "--n-shots", "2"]) == 0
    out = capsys.readouterr().out
    for row in ("constant prior", "first", "max", "mean", "hard", "unary", "binary"):
        assert any(line.startswith(row) and len(line.split()) >= 4 for line in out.splitlines())
    assert "60 text passes for 6 aggregations (one greedy decoding per text serves first, max," \
        " mean, hard;" in out
    assert out.count("  generated:") == 4
