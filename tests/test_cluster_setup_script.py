"""scripts/start_test_setup.sh: start a local cluster, run its demo, stop it by pid file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker

from tests.helpers import REPO_ROOT, free_port

SCRIPT = REPO_ROOT / "scripts" / "start_test_setup.sh"


def run(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_start_demo_stop(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    # A /24 of its own, away from the developer's 127.0.1.x and the other tests' blocks.
    net = f"127.{20 + os.getpid() % 200}.240"
    env = dict(os.environ)
    env.update(
        {
            "MOTEY_VENV": sys.prefix,
            "MOTEY_SETUP_DIR": str(tmp_path / "setup"),
            "MOTEY_SETUP_NET": net,
            "MOTEY_SETUP_MQTT_PORT": str(free_port(f"{net}.254")),
        }
    )
    node_dirs = [tmp_path / "setup" / f"node-{n}" for n in (1, 2, 3)]
    try:
        out = run(env, "start", "3")
        for n in (1, 2, 3):
            assert f"https://{net}.{n}:5023/v1" in out  # a secure cell by default
            assert "peers: 2" in out
        assert "camera,zigbee" in out  # node 2
        assert "admin.token" in out and "ca.crt" in out

        blueprint = tmp_path / "camera.yaml"
        blueprint.write_text(
            "service_name: camera_demo\nimages:\n  - name: motey-test/busybox:latest\n"
            "    capabilities: [camera]\n    parameters: {command: 'sleep 300'}\n"
        )
        demo = run(env, "demo", str(blueprint))
        assert f"needs ['camera']) runs on node {net}.2: RUNNING" in demo, demo
    finally:
        out = run(env, "stop")
    pids = [int((d / "node.pid").read_text()) for d in node_dirs if (d / "node.pid").exists()]
    assert pids == []  # pid files are removed once their process is gone
    assert "stopped pid" in out and "terminating service" in out
    for directory in node_dirs:
        node_id = (directory / "db" / "node_id").read_text().strip()
        assert (
            docker_client.containers.list(all=True, filters={"label": f"motey.node_id={node_id}"})
            == []
        )
    assert "not running" in run(env, "status")
