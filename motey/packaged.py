"""Where the files that ship with Motey are: the web client and the default ``config.ini``.

A wheel carries both inside the package (``motey/webclient/``, ``motey/config.ini``,
copied there by ``setup.py`` at build time); a source checkout and an editable install
keep them at the top of the repository, where they are edited. Both layouts are looked
up here, the installed one first, so every caller finds the same files either way.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent


def webclient_dir() -> Path:
    """The folder whose ``index.html`` a node serves at ``/`` by default."""
    installed = _PACKAGE_DIR / "webclient"
    return installed if (installed / "index.html").is_file() else _CHECKOUT_DIR / "webclient"


def default_config_file() -> Path:
    """The documented default ``config.ini`` (every key with its comment)."""
    installed = _PACKAGE_DIR / "config.ini"
    return installed if installed.is_file() else _CHECKOUT_DIR / "config.ini"
