"""Reading config.ini: defaults, the original's keys, environment overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from motey.config import DEFAULTS, load_config
from motey.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text)
    return path


def test_bundled_config_documents_every_key() -> None:
    text = (REPO / "config.ini").read_text()
    for section, keys in DEFAULTS.items():
        assert f"[{section}]" in text, section
        for key in keys:
            assert f"\n{key} =" in text, f"[{section}] {key} missing from config.ini"
    config = load_config(REPO / "config.ini", environ={})
    assert config["WEBSERVER"]["port"] == 5023
    assert config["ZEROMQ"]["capabilities_replier"] == 5091


def test_original_config_still_works(tmp_path: Path) -> None:
    original = """
[GENERAL]
app_name = Motey
pid = /var/run/motey.pid

[LOGGER]
name = Motey
log_path = /var/log/motey/
file_name = application.log

[WEBSERVER]
ip = 0.0.0.0
port = 5023

[MQTT]
ip = 172.18.0.3
port = 1883
keepalive = 60
username = neoklosch
password = neoklosch

[DATABASE]
path = motey/databases

[ZEROMQ]
capability_engine_ipc_path = /tmp/capability_engine.ipc
capabilities_replier = 5091
deploy_image_replier = 5092
image_status_replier = 5093
image_terminate_replier = 5094
"""
    config = load_config(write(tmp_path, original), environ={})
    assert config["WEBSERVER"]["ip"] == "0.0.0.0"
    assert config["MQTT"]["keepalive"] == 60
    assert config["MQTT"]["username"] == "neoklosch"
    assert config["GENERAL"]["pid"] == "/var/run/motey.pid"
    assert config["DATABASE"]["path"] == str(tmp_path / "motey" / "databases")


def test_relative_paths_follow_the_config_file_not_the_cwd(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, "[DATABASE]\npath = data\n[LOGGER]\nlog_path = logs\n")
    monkeypatch.chdir("/")
    config = load_config(path, environ={})
    assert config["DATABASE"]["path"] == str(tmp_path / "data")
    assert config["LOGGER"]["log_path"] == str(tmp_path / "logs")


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[WEBSERVER]\nport = 5023\n[NODE]\nip = 127.0.0.5\n")
    config = load_config(
        path,
        environ={
            "MOTEY_WEBSERVER_PORT": "6000",
            "MOTEY_NODE_CAPABILITIES": "zigbee, gpu",
            "MOTEY_UNKNOWN_KEY": "ignored",
        },
    )
    assert config["WEBSERVER"]["port"] == 6000
    assert config["NODE"]["capabilities"] == ["zigbee", "gpu"]
    assert config["WEBSERVER"]["ip"] == "127.0.0.5", "the API binds the node address by default"


def test_bad_environment_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[ORCHESTRATOR\] watch_interval"):
        load_config(write(tmp_path, ""), environ={"MOTEY_ORCHESTRATOR_WATCH_INTERVAL": "-1"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/motey.ini", environ={})


def test_healing_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[NODE]\nip = 127.0.0.1\n"), environ={})
    orchestrator = config["ORCHESTRATOR"]
    assert orchestrator["placement_deadline"] is None  # wait as long as it takes
    assert orchestrator["stop_after_disconnect"] < orchestrator["reschedule_after"]
    assert config["ZEROMQ"]["image_claims_replier"] == 5097
    config = load_config(
        write(tmp_path, "[NODE]\nip = 127.0.0.1\n[ORCHESTRATOR]\nplacement_deadline = 7.5\n"),
        environ={},
    )
    assert config["ORCHESTRATOR"]["placement_deadline"] == 7.5


def test_stop_after_disconnect_must_stay_below_reschedule_after(tmp_path: Path) -> None:
    text = "[NODE]\nip = 127.0.0.1\n[ORCHESTRATOR]\nreschedule_after = 10\n"
    text += "stop_after_disconnect = 10\n"
    with pytest.raises(
        ConfigError, match="stop_after_disconnect .* must be below reschedule_after"
    ):
        load_config(write(tmp_path, text), environ={})
