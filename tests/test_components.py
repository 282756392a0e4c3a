"""The whole node built in-process from the DI container: starts, serves, stops cleanly."""

from __future__ import annotations

import threading
from pathlib import Path

import requests

from motey.config import load_config
from motey.di.app_module import build_container
from motey.security.tokens import TokenRecord, write_token_file
from tests.helpers import issue_node_credentials, next_loopback, session_cell


def test_container_builds_starts_and_stops_without_leaks(tmp_path: Path, no_thread_leaks) -> None:
    ip = next_loopback()
    config_file = tmp_path / "config.ini"
    config_file.write_text(
        f"[NODE]\nip = {ip}\nname = inproc\n[DATABASE]\npath = db\n[LOGGER]\nlog_path = log\n"
        f"[ZEROMQ]\ncapability_engine_ipc_path = {tmp_path / 'cap.ipc'}\n"
        f"[SECURITY]\ncredentials = {issue_node_credentials('inproc', ip, tmp_path / 'cred')}\n"
    )
    record, token = TokenRecord.issue("viewer", "viewer")
    write_token_file(tmp_path / "db" / "tokens.json", [record])
    container = build_container(load_config(config_file, environ={}))
    container.config.LOGGER.console.from_value(False)
    container.init_resources()
    core = container.core()
    core.start()
    try:
        auth = {"Authorization": f"Bearer {token}"}
        ca = str(session_cell().dir / "ca.crt")
        r = requests.get(f"https://{ip}:5023/v1/node", headers=auth, verify=ca, timeout=5)
        assert r.status_code == 200 and r.json()["lifecycle"] == "OPERATE"
        assert container.orchestrator() is container.orchestrator(), "one orchestrator per node"
        assert any(t.name == "motey-watcher" for t in threading.enumerate())
    finally:
        core.stop()
        core.stop()  # idempotent
        container.shutdown_resources()
    assert container.identity().lifecycle.value == "DECOMMISSION"
    assert (tmp_path / "log" / "application.log").exists()
