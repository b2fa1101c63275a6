"""Sphinx configuration: numpydoc API reference and MyST markdown pages."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "sklearn_llm_multilabel"
author = "sklearn_llm_multilabel developers"
copyright = "2026, sklearn_llm_multilabel developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*.json"]
autosummary_generate = True
templates_path = ["_templates"]
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path = []
suppress_warnings = ["myst.xref_missing"]


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    """Leave out the metadata-routing setters that scikit-learn generates per estimator."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)
