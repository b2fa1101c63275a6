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
# the example scripts need the embedded model and the shared data, and some run for
# many minutes: the gallery shows them (with their docstrings) without running them
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "plot_gallery": "False",
    "filename_pattern": r"^$",
    "download_all_examples": False,
    "show_signature": False,
    "write_computation_times": False,
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
suppress_warnings = ["myst.xref_missing"]


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    """Leave out the metadata-routing setters that scikit-learn generates per estimator."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)
