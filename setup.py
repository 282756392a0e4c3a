"""Compatibility shim: all metadata lives in pyproject.toml.

One build step lives here: the web client (``webclient/``) and the documented default
``config.ini`` are edited at the top of the repository, where the design's layout keeps
them, and are copied into the built package as ``motey/webclient/`` and
``motey/config.ini`` so that an installed node serves its GUI and can print its default
configuration (``motey.packaged`` finds them in either place).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: The page's own assets, the same names the node serves (motey/communication/api/app.py
#: WEBCLIENT_ASSETS); browser tooling and tests stay out of the package.
WEBCLIENT_ASSETS = ("index.html", "favicon.svg", "css", "js", "vendor")


class BuildPyWithData(build_py):
    """build_py that also copies the web client and config.ini into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout itself
        target = Path(self.build_lib) / "motey"
        shutil.copy2(ROOT / "config.ini", target / "config.ini")
        client = target / "webclient"
        shutil.rmtree(client, ignore_errors=True)
        client.mkdir(parents=True)
        for name in WEBCLIENT_ASSETS:
            source = ROOT / "webclient" / name
            if source.is_dir():
                shutil.copytree(source, client / name)
            else:
                shutil.copy2(source, client / name)


setup(cmdclass={"build_py": BuildPyWithData})
