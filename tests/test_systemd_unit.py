"""The systemd unit (scripts/motey.service): valid for systemd, hardened, and its settings
mean what they say to Motey. No systemd runs in the test machine, so the unit is checked
with systemd's own offline tools and Motey's own config and command-line parsers."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

from motey.cli import build_parser
from motey.config import DEFAULTS, load_config
from tests.helpers import REPO_ROOT

UNIT = REPO_ROOT / "scripts" / "motey.service"
INSTALLED_MOTEY = "/opt/motey/venv/bin/motey"
#: systemd-analyze security's exposure level, 0 (locked down) … 10 (unprotected); its
#: --threshold takes the same value times ten.
MAX_EXPOSURE = 3.0


def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's ``motey`` script, because
    ``verify`` checks that the command exists."""
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_MOTEY in text
    local = tmp_path / "motey.service"
    local.write_text(text.replace(INSTALLED_MOTEY, str(Path(sys.executable).parent / "motey")))
    return local


def service_section() -> tuple[list[str], dict[str, str]]:
    """ExecStart's argv and the Environment= variables of the unit."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    environment: dict[str, str] = {}
    exec_start: list[str] = []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, val = value.partition("=")
            environment[name] = val
        elif key == "ExecStart":
            exec_start = shlex.split(value)
    return exec_start, environment


def test_systemd_verifies_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_unit_exposure_is_low(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--threshold={MAX_EXPOSURE * 10:.0f}",
         "--no-pager", str(unit_copy(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    level = result.stdout.split("Overall exposure level for motey.service:")[1].split()[0]
    assert float(level) <= MAX_EXPOSURE


def test_unit_runs_motey_in_the_foreground_with_system_paths() -> None:
    exec_start, environment = service_section()
    assert exec_start[0] == INSTALLED_MOTEY
    args = build_parser().parse_args(exec_start[1:])
    assert args.command == "run" and args.config == "/etc/motey/config.ini"

    motey_vars = {k: v for k, v in environment.items() if k.startswith("MOTEY_")}
    for name in motey_vars:  # a misspelt variable would be ignored silently
        assert any(
            name == f"MOTEY_{section}_{key.upper()}"
            for section, keys in DEFAULTS.items()
            for key in keys
        ), f"{name} names no config key"
    config = load_config(REPO_ROOT / "config.ini", environ=motey_vars)
    assert config["DATABASE"]["path"] == "/var/lib/motey"
    assert config["LOGGER"]["log_path"] == "/var/log/motey"
    assert config["GENERAL"]["pid"] == "/run/motey/motey.pid"
    assert config["ZEROMQ"]["capability_engine_ipc_path"] == "/run/motey/capability_engine.ipc"
    assert config["DOCKER"]["url"] == "unix:///var/run/docker.sock"
