"""Every public function with parameter constraints enforces them, with scikit-learn's error.

The functions are found by walking the package (``validate_params`` leaves
its constraints on the function), as imbalanced-learn's and scikit-learn's
``test_public_functions.py`` do; each constrained parameter gets a value no
constraint accepts, and must raise ``InvalidParameterError`` naming it.
"""

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from sklearn.utils._param_validation import (
    InvalidParameterError,
    generate_invalid_param_val,
    make_constraint,
)

import sklearn_llm_multilabel as pkg

#: valid values of the required parameters, by name
REQUIRED = {"y_true": np.array([[1.0, 0.0], [0.5, 1.0]]),
            "y_proba": np.array([[0.9, 0.2], [0.4, 0.8]]),
            "annotator_labels": [[["a"], []]], "predicted_labels": [["a"]],
            "label_names": ["a", "b"]}


def _public_functions() -> dict[str, object]:
    found = {}
    names = [pkg.__name__] + [info.name for info in pkgutil.walk_packages(
        pkg.__path__, prefix=f"{pkg.__name__}.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])]
    for module_name in names:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if inspect.isfunction(obj) and hasattr(obj, "_skl_parameter_constraints"):
                found[f"{module_name}.{name}"] = obj
    return found


FUNCTIONS = _public_functions()


def test_the_metrics_are_among_the_validated_functions():
    names = {name.rsplit(".", 1)[-1] for name in FUNCTIONS}
    assert {"distribution_nll", "distribution_l1", "example_f1", "brier_score",
            "expected_calibration_error", "label_f1", "alignment_report"} <= names


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_invalid_parameters_raise_the_sklearn_error_naming_them(name):
    func = FUNCTIONS[name]
    constraints = func._skl_parameter_constraints
    params = inspect.signature(func).parameters
    required = {p: REQUIRED[p] for p, spec in params.items() if spec.default is inspect._empty}
    func(**required)  # valid as given
    checked = 0
    for param, options in constraints.items():
        options = [make_constraint(c) for c in options]
        candidates = [object()]  # of no accepted type
        for constraint in options:
            try:
                candidates.append(generate_invalid_param_val(constraint))
            except NotImplementedError:
                continue
        for bad in candidates:
            if any(c.is_satisfied_by(bad) for c in options):
                continue
            with pytest.raises(InvalidParameterError,
                               match=rf"The '{param}' parameter of {func.__name__} must be"):
                func(**{**required, param: bad})
            checked += 1
    assert checked >= len(constraints)
