"""Sphinx configuration for Motey's documentation (Markdown pages via MyST)."""

project = "Motey"
author = "Motey developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "screenshots"]
html_theme = "alabaster"
