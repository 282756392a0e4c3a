"""Sphinx configuration for Motey's documentation.

Markdown pages via MyST; the Python API reference from the package's docstrings
(autodoc + autosummary, generated into ``_autosummary/`` at build time); the REST API
rendered from the OpenAPI document the node serves (sphinxcontrib-openapi).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a checkout without install

project = "Motey"
author = "Motey developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinxcontrib.openapi",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "screenshots"]
templates_path = ["_templates"]
html_theme = "alabaster"

autosummary_generate = True
# An annotation naming a class that two modules define (a re-export) links to one of them;
# that ambiguity is no error in the documentation.
suppress_warnings = ["ref.python"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Re-exports in a package's __all__ are documented once, in the module that defines them.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
