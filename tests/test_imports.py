"""Importing the package, and the CLI's help, do not import torch, transformers or peft."""

import subprocess
import sys

import pytest

CHECK = ("import sys; {code}; "
         "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules); "
         "print(heavy); sys.exit(1 if heavy else 0)")


@pytest.mark.parametrize("code", [
    "import sklearn_llm_multilabel",
    "import sklearn_llm_multilabel.cli, sklearn_llm_multilabel.demo, "
    "sklearn_llm_multilabel.datasets, sklearn_llm_multilabel.metrics, "
    "sklearn_llm_multilabel.model_selection, sklearn_llm_multilabel.aggregation, "
    "sklearn_llm_multilabel.analysis, sklearn_llm_multilabel.report",
    "from sklearn_llm_multilabel import LLMMultiLabelClassifier as C; "
    "C(labels=['a'], finetune='lora').get_params()",
    "from sklearn_llm_multilabel.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit: pass",
    "from sklearn_llm_multilabel.cli import main\n"
    "assert main(['evaluate', 'missing.csv', '--format', 'csv']) == 2",
])
def test_no_torch_at_import(code):
    script = CHECK.format(code=code) if "\n" not in code else code + "\n" + CHECK.format(code="pass")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


LIGHT = ("import sys; {code}; "
         "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'sklearn', 'scipy', "
         "'pandas', 'pyarrow') if m in sys.modules); print(heavy); sys.exit(1 if heavy else 0)")


@pytest.mark.parametrize("code", [
    "import sklearn_llm_multilabel",
    "import sklearn_llm_multilabel.cli as cli\n"
    "for argv in (['--help'], *([c, '--help'] for c in "
    "('evaluate', 'analyze', 'predict', 'score', 'cache'))):\n"
    "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass",
])
def test_the_package_and_the_help_import_nothing_heavy(code):
    """Neither torch and transformers nor scikit-learn, SciPy, pandas or pyarrow."""
    script = LIGHT.format(code=code) if "\n" not in code else code + "\n" + LIGHT.format(
        code="pass")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lazy_names_resolve():
    import sklearn_llm_multilabel as pkg
    from sklearn_llm_multilabel import backends

    assert callable(pkg.load_model) and callable(pkg.register_model)
    assert backends.StepScorer.__name__ == "StepScorer"
    assert set(pkg.__all__) <= set(dir(pkg))
    assert pkg.LLMMultiLabelClassifier.__name__ == "LLMMultiLabelClassifier"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        backends.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_the_package_has_no_import_cycle():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "import_graph.py"
    tool = runpy.run_path(str(script))
    edges = tool["graph"]()
    assert "sklearn_llm_multilabel.store._sharded" in edges["sklearn_llm_multilabel.store._files"]
    assert tool["cycles"](edges) == []
    assert tool["cycles"]({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
