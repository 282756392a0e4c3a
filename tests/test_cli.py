"""The ``motey`` command as a subprocess: help, version, config errors, the daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from motey import __version__
from tests.helpers import MoteyNode, wait_for


def motey(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MOTEY_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "motey", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def test_version_and_help() -> None:
    version = motey("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"motey {__version__}"
    helped = motey("--help")
    assert helped.returncode == 0
    for word in ("run", "start", "stop", "restart", "status", "--config"):
        assert word in helped.stdout
    sub = motey("stop", "--help")
    assert sub.returncode == 0 and "--timeout" in sub.stdout


def test_missing_command_and_unknown_option() -> None:
    assert motey().returncode == 2
    bad = motey("run", "--frobnicate")
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = motey("run", "--config", str(tmp_path / "absent.ini"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr and "absent.ini" in result.stderr


def test_invalid_config_values_are_named(tmp_path: Path) -> None:
    cases = {
        "[WEBSERVER]\nport = eighty\n": "[WEBSERVER] port",
        "[WEBSERVER]\nport = 70000\n": "[WEBSERVER] port",
        "[NODE]\nip = not-an-ip\n": "[NODE] ip",
        "[DOCKER]\npull_missing = maybe\n": "[DOCKER] pull_missing",
        "[ZEROMQ]\ncapabilities_replier = 5092\n": "replier ports must all differ",
        "not an ini file": "cannot parse",
    }
    for text, expected in cases.items():
        config = tmp_path / "bad.ini"
        config.write_text(text)
        result = motey("run", "--config", str(config))
        assert result.returncode == 2, (text, result.stderr)
        assert expected in result.stderr, (text, result.stderr)


def test_port_in_use_fails_clearly(node: MoteyNode, tmp_path: Path) -> None:
    clash = MoteyNode(tmp_path, name="clash", ip=node.ip)
    result = motey("run", "--config", str(clash.config_path), timeout=60)
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_daemon_start_status_restart_stop(tmp_path: Path, docker_client) -> None:
    node = MoteyNode(tmp_path, name="daemon")
    config = str(node.config_path)
    pid_file = node.dir / "motey.pid"
    try:
        assert motey("status", "--config", config).returncode == 3
        started = motey("start", "--config", config)
        assert started.returncode == 0, started.stderr
        node.wait_ready()
        status = motey("status", "--config", config)
        assert status.returncode == 0 and "running" in status.stdout
        first_pid = int(pid_file.read_text())
        again = motey("start", "--config", config)
        assert again.returncode == 1 and "already running" in again.stderr

        restarted = motey("restart", "--config", config)
        assert restarted.returncode == 0, restarted.stderr
        node.wait_ready()
        second_pid = int(pid_file.read_text())
        assert second_pid != first_pid
        assert node.get("/v1/node", timeout=5).status_code == 200
        # The daemon logs to the configured folder, relative to the config file.
        assert (node.dir / "log" / "application.log").exists()

        stopped = motey("stop", "--config", config)
        assert stopped.returncode == 0, stopped.stderr
        assert not pid_file.exists()
        try:
            os.kill(second_pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "stop must wait until the daemon is gone"
        assert motey("status", "--config", config).returncode == 3
        assert motey("stop", "--config", config).returncode == 0
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, 15)
                wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=20)
            except ProcessLookupError:
                pass
