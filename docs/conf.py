"""Sphinx configuration: numpydoc API reference and MyST markdown pages."""

import importlib.metadata
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "sklearn_llm_multilabel"
release = version = importlib.metadata.version("sklearn_llm_multilabel")
author = "sklearn_llm_multilabel developers"
copyright = "2026, sklearn_llm_multilabel developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
# the gallery runs every example during the build, on small slices so that `make docs`
# stays within minutes on a 2-core CPU (the embedded model; the examples that read the
# shared datasets run when the data folder is there); each example's figures are its
# thumbnails
_DOCS_CACHE = os.path.join(os.path.dirname(__file__), "_build", "example-cache")
_DOCS_OUTPUT = os.path.join(os.path.dirname(__file__), "_build", "example-output")
_QUICK_ARGS = {
    "grid_search_aggregation": ["--n-shots", "4"],
    "grid_search_calibrated": ["--n-shots", "4"],
    "step_analysis": ["--dataset", "illustrative", "--n-test", "12", "--n-shots", "4",
                      "--out", os.path.join(_DOCS_OUTPUT, "step-analysis")],
    "baselines": ["--dataset", "illustrative", "--n-shots", "4", "--max-epochs", "2"],
    "other_model_and_gpu": ["--device", "cpu"],
    "alignment_table": ["--limit-train", "40", "--limit-test", "8", "--n-calibration", "16",
                        "--n-shots", "4", "--strategies", "first,max",
                        "--cache-dir", _DOCS_CACHE],
    "finetune": ["--datasets", "hs_brexit", "--n-train", "8", "--n-test", "4",
                 "--n-shots", "2"],
    "lewidi2025_varierrnli": ["--limit-train", "40", "--limit-eval", "12", "--n-shots", "4",
                              "--max-epochs", "1", "--n-bootstrap", "200",
                              "--cache-dir", _DOCS_CACHE],
}
_NEEDS_DATA = {"alignment_table", "finetune", "lewidi2025_varierrnli"}


def _quick_argv(gallery_conf, script_vars):
    """The small slice each example runs on in the documentation build."""
    name = os.path.splitext(os.path.basename(script_vars["src_file"]))[0]
    return _QUICK_ARGS.get(name, [])


def _data_available() -> bool:
    from sklearn_llm_multilabel.datasets import get_data_home

    try:
        get_data_home()
    except FileNotFoundError:
        return False
    return True


_run = sorted(_QUICK_ARGS if _data_available() else set(_QUICK_ARGS) - _NEEDS_DATA)
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "plot_gallery": "True",
    "filename_pattern": "/(" + "|".join(_run) + r")\.py$",
    "reset_argv": _quick_argv,
    "image_scrapers": ("matplotlib",),
    "download_all_examples": False,
    "show_signature": False,
    "write_computation_times": True,
    "abort_on_example_error": True,
}
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*.json", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json"]
autosummary_generate = True
templates_path = ["_templates"]
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "amsmath"]
html_theme = "pydata_sphinx_theme"
html_title = f"{project} {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    # the paper the library implements (as in pyproject's [project.urls]); the source of
    # every documented function is one click away through viewcode's [source] links
    "icon_links": [{"name": "The paper (arXiv 2505.17510)",
                    "url": "https://arxiv.org/abs/2505.17510",
                    "icon": "fa-solid fa-file-lines"}],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "show_toc_level": 2,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
# the gallery's reset_argv is a function, which Sphinx cannot pickle into its environment
# cache (the configuration is then compared by value on the next build: harmless)
suppress_warnings = ["myst.xref_missing", "config.cache"]


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    """Leave out the metadata-routing setters that scikit-learn generates per estimator."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)
