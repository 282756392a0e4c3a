"""The package a user installs: ``python -m build``'s sdist and wheel, and a node run from
that wheel in a fresh virtual environment outside the checkout (issue 11, part 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from motey.cli import main
from motey.communication.api.app import WEBCLIENT_ASSETS
from motey.config import default_config_path, load_config
from motey.packaged import default_config_file
from tests.helpers import REPO_ROOT, MoteyNode


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points back into the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MOTEY_") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }


def webclient_files() -> dict[str, bytes]:
    """The page's own files in the checkout, by their path below ``webclient/``."""
    root = REPO_ROOT / "webclient"
    files = {}
    for name in WEBCLIENT_ASSETS:
        path = root / name
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build``: an sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"sdist": next(out.glob("motey-*.tar.gz")), "wheel": next(out.glob("motey-*.whl"))}


@pytest.fixture(scope="module")
def installed(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the checkout, with only the wheel installed.

    pip takes the dependencies from the package index (or its local cache).
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(dists["wheel"])],
        cwd=venv,
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv


class InstalledNode(MoteyNode):
    """A node run by the ``motey`` script of another environment, from outside the checkout."""

    def __init__(self, workdir: Path, venv: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.venv = venv

    def start(self, wait: bool = True) -> InstalledNode:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "motey"), "run", "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=clean_env(),
            )
        if wait:
            self.wait_ready()
        return self


@pytest.fixture
def installed_node(installed: Path, tmp_path: Path) -> Iterator[InstalledNode]:
    # Open mode: this test is about packaging, not the secure mode's credentials, which are
    # set up by the security work in tests/helpers.py for the checkout's own nodes.
    node = InstalledNode(tmp_path, installed, extra={"SECURITY": {"mode": "open"}})
    yield node
    node.stop()


@pytest.mark.timeout(900)  # builds the dists / the venv in its fixtures
def test_wheel_carries_the_web_client_and_the_default_config(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        packaged = {
            n[len("motey/webclient/") :]: wheel.read(n)
            for n in names
            if n.startswith("motey/webclient/") and not n.endswith("/")
        }
        assert packaged == webclient_files()
        assert {n.split("/", 1)[0] for n in packaged} == set(WEBCLIENT_ASSETS)
        assert wheel.read("motey/config.ini") == (REPO_ROOT / "config.ini").read_bytes()
        assert "motey/communication/api/openapi.yaml" in names
        assert not [n for n in names if "node_modules" in n or n.startswith("tests/")]


@pytest.mark.timeout(900)  # builds the dists / the venv in its fixtures
def test_sdist_carries_what_the_wheel_is_built_from(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert "config.ini" in names and "setup.py" in names and "pyproject.toml" in names
    assert {f"webclient/{n}" for n in webclient_files()} <= names
    assert not [n for n in names if "node_modules" in n or n.startswith("tests/browser")]


@pytest.mark.timeout(900)  # builds the dists / the venv in its fixtures
def test_installed_node_serves_gui_openapi_and_prints_its_config(
    installed: Path, installed_node: InstalledNode, tmp_path: Path
) -> None:
    python = str(installed / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import motey; print(motey.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True, env=clean_env(),
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed) and not Path(where).is_relative_to(REPO_ROOT)
    default = subprocess.run(
        [python, "-c", "from motey.config import default_config_path as d; print(d())"],
        cwd=tmp_path, capture_output=True, text=True, check=True, env=clean_env(),
    ).stdout.strip()  # fmt: skip
    assert default == "/etc/motey/config.ini"  # no data written inside site-packages

    example = subprocess.run(
        [str(installed / "bin" / "motey"), "config-example"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=30,
    )  # fmt: skip
    assert example.returncode == 0, example.stderr
    assert example.stdout == (REPO_ROOT / "config.ini").read_text(encoding="utf-8")

    installed_node.start()
    page = installed_node.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.content == (REPO_ROOT / "webclient" / "index.html").read_bytes()
    script = installed_node.get("/js/app.js")
    assert script.status_code == 200
    assert script.content == (REPO_ROOT / "webclient" / "js" / "app.js").read_bytes()

    spec = installed_node.get("/v1/openapi.json")
    assert spec.status_code == 200, spec.text
    assert spec.json()["openapi"].startswith("3.") and "/v1/service" in spec.json()["paths"]
    assert installed_node.stop() == 0


def test_checkout_finds_its_own_web_client_and_config(tmp_path: Path) -> None:
    """In a checkout the files stay where they are edited; an explicit path still wins."""
    assert default_config_path() == REPO_ROOT / "config.ini"
    assert default_config_file() == REPO_ROOT / "config.ini"
    assert load_config(REPO_ROOT / "config.ini", environ={})["WEBSERVER"]["webclient_path"] == str(
        REPO_ROOT / "webclient"
    )
    (tmp_path / "client").mkdir()
    (tmp_path / "node.ini").write_text("[WEBSERVER]\nwebclient_path = client\n")
    config = load_config(tmp_path / "node.ini", environ={})
    assert config["WEBSERVER"]["webclient_path"] == str(tmp_path / "client")


def test_config_example_needs_no_config_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("MOTEY_CONFIG", str(tmp_path / "absent.ini"))
    assert main(["config-example"]) == 0
    assert capsys.readouterr().out == (REPO_ROOT / "config.ini").read_text(encoding="utf-8")
