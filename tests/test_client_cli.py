"""The client commands of ``motey`` against a real node (real HTTP, real Docker)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import docker

from tests.helpers import TEST_IMAGE, MoteyNode, unique_name, wait_for


def _blueprint(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"service_name: {name}\n"
        "images:\n"
        f"  - name: {TEST_IMAGE}\n"
        "    parameters:\n"
        f"      command: [sh, -c, {json.dumps(script)}]\n"
    )
    return path


def test_deploy_wait_to_running_then_inspect_and_terminate(node: MoteyNode, tmp_path: Path) -> None:
    name = unique_name("cli")
    path = _blueprint(tmp_path, name, "echo ready; sleep 600")
    result = node.cli("deploy", str(path), "--wait", "--timeout", "60", "-o", "json")
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)  # stdout is only the JSON; progress went to stderr
    assert service["state"] == "RUNNING" and service["service_name"] == name
    assert f"image {TEST_IMAGE} on {node.ip}: RUNNING" in result.stderr
    assert node.service(service["id"])["state"] == "RUNNING"

    listed = node.cli("services")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "STATE", "IMAGES", "MESSAGE"]
    assert any(name in line and "RUNNING" in line for line in listed.stdout.splitlines())
    as_json = json.loads(node.cli("services", "-o", "json").stdout)
    assert [s["id"] for s in as_json] == [service["id"]]

    shown = node.cli("service", name)  # by name
    assert shown.returncode == 0 and service["id"] in shown.stdout and node.ip in shown.stdout
    by_prefix = json.loads(node.cli("service", service["id"][:8], "-o", "json").stdout)
    assert by_prefix["id"] == service["id"]

    nodes = node.cli("nodes", "-o", "json")
    assert [n["ip"] for n in json.loads(nodes.stdout)] == [node.ip]
    assert node.ip in node.cli("nodes").stdout

    ended = node.cli("terminate", name, "--wait", "--timeout", "60")
    assert ended.returncode == 0, ended.stderr
    assert "TERMINATED" in ended.stdout
    assert node.service(service["id"])["state"] == "TERMINATED"


def test_deploy_wait_to_error_exits_non_zero_with_the_reason(
    node: MoteyNode, tmp_path: Path
) -> None:
    # A command the image does not have: Docker cannot start it, so the service never runs
    # (a container that exits at once may be seen RUNNING for a moment first).
    path = tmp_path / "fail.yaml"
    path.write_text(
        f"service_name: {unique_name('fail')}\nimages:\n  - name: {TEST_IMAGE}\n"
        "    parameters: {command: [/no/such/program]}\n"
    )
    result = node.cli("deploy", str(path), "--wait", "--timeout", "60", "-o", "json")
    assert result.returncode == 1, (result.stdout, result.stderr)
    service = json.loads(result.stdout)
    assert service["state"] == "ERROR"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"motey: error: service {service['service_name']} is ERROR: ")
    assert "/no/such/program" in last  # Docker's reason, passed on


def test_deploy_without_wait_and_with_a_timeout(node: MoteyNode, tmp_path: Path) -> None:
    name = unique_name("nowait")
    path = _blueprint(tmp_path, name, "sleep 600")
    accepted = node.cli("deploy", str(path), "-o", "json")
    assert accepted.returncode == 0
    service_id = json.loads(accepted.stdout)["id"]
    node.wait_service_state(service_id, "RUNNING")
    node.delete(f"/v1/service/{service_id}")
    # A timeout shorter than any deployment: exit 1, the state named.
    slow = _blueprint(tmp_path, unique_name("slow"), "sleep 600")
    timed_out = node.cli("deploy", str(slow), "--wait", "--timeout", "0")
    assert timed_out.returncode == 1
    assert "after 0 s" in timed_out.stderr


def test_invalid_files_and_an_unreachable_node(node: MoteyNode, tmp_path: Path) -> None:
    missing = node.cli("deploy", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("images: [\n")
    bad_yaml = node.cli("deploy", str(broken))
    assert bad_yaml.returncode == 2 and "not YAML" in bad_yaml.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("service_name: x\nimages:\n  - name: a\n    colour: red\n")
    refused = node.cli("deploy", str(wrong))
    assert refused.returncode == 2 and "colour" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    unreachable = node.cli("services", "--node", "http://127.0.0.1:1")
    assert unreachable.returncode == 3
    assert unreachable.stderr.strip() == (
        "motey: error: node http://127.0.0.1:1 is unreachable: [Errno 111] Connection refused"
    )


class _Refusing(BaseHTTPRequestHandler):
    """A stand-in for a secure node's answers to a missing or weak token."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        auth = self.headers.get("Authorization") or ""
        seen.append(auth)
        status = 401 if auth != "Bearer viewer-token" else 403
        body = json.dumps({"error": "Unauthorized", "message": "token refused"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


seen: list[str] = []


def test_bad_token_and_a_role_not_allowed_are_one_line_errors() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:

        def motey(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
            env = {"PATH": "/usr/bin:/bin", "MOTEY_ADDR": url}
            if token:
                env["MOTEY_TOKEN"] = token
            return subprocess.run(
                [sys.executable, "-m", "motey", *args],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
            )

        none = motey("services")
        assert none.returncode == 4
        assert none.stderr.strip().startswith("motey: error: not authenticated")
        assert "MOTEY_TOKEN" in none.stderr
        weak = motey("services", token="viewer-token")
        assert weak.returncode == 4 and "not allowed" in weak.stderr
        flag = motey("services", "--token", "other")
        assert flag.returncode == 4 and "token was refused" in flag.stderr
        assert seen[-2:] == ["Bearer viewer-token", "Bearer other"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_logs_and_follow(
    node: MoteyNode, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    name = unique_name("logs")
    path = _blueprint(tmp_path, name, "for i in 1 2 3 4 5; do echo line-$i; done; sleep 600")
    assert node.cli("deploy", str(path), "--wait", "--timeout", "60").returncode == 0
    service = json.loads(node.cli("service", name, "-o", "json").stdout)
    image_id = service["images"][0]["id"]
    wait_for(lambda: "line-5" in node.cli("logs", name).stdout, timeout=10, what="all lines logged")
    assert node.cli("logs", name).stdout.splitlines() == [f"line-{i}" for i in range(1, 6)]
    assert node.cli("logs", name, "--tail", "2").stdout.splitlines() == ["line-4", "line-5"]
    assert node.cli("logs", name, image_id[:8], "--tail", "1").stdout == "line-5\n"
    as_json = json.loads(node.cli("logs", name, "--tail", "2", "-o", "json").stdout)
    assert as_json == [
        {"image": image_id, "name": TEST_IMAGE, "truncated": False, "lines": ["line-4", "line-5"]}
    ]

    with subprocess.Popen(
        [sys.executable, "-m", "motey", "logs", name, "--follow", "--tail", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=node.client_env(),
    ) as follower:
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "line-5\n"  # the tail, then what follows
            labels = {"label": f"motey.image_id={image_id}"}
            container = docker_client.containers.list(filters=labels)[0]
            container.exec_run(["sh", "-c", "echo printed-after-follow-started > /proc/1/fd/1"])
            assert follower.stdout.readline() == "printed-after-follow-started\n"
        finally:
            follower.terminate()
    unknown = node.cli("logs", name, "nope")
    assert unknown.returncode == 2 and "has no image 'nope'" in unknown.stderr


def test_capabilities_add_and_remove(node: MoteyNode) -> None:
    added = node.cli("capabilities", "add", "zigbee")
    assert added.returncode == 0
    assert any(line.split()[:2] == ["zigbee", "hardware"] for line in added.stdout.splitlines())
    caps = json.loads(node.cli("capabilities", "-o", "json").stdout)
    assert {"capability": "zigbee", "capability_type": "hardware"}.items() <= next(
        c for c in caps if c["capability"] == "zigbee"
    ).items()
    removed = node.cli("capabilities", "remove", "zigbee", "-o", "json")
    assert removed.returncode == 0
    assert "zigbee" not in [c["capability"] for c in json.loads(removed.stdout)]
    assert node.cli("capabilities", "add").returncode == 2


def test_help_has_examples() -> None:
    for command in ("deploy", "services", "logs", "capabilities", "terminate"):
        helped = subprocess.run(
            [sys.executable, "-m", "motey", command, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert helped.returncode == 0 and "examples:" in helped.stdout
        assert "--node" in helped.stdout and "-o" in helped.stdout


def test_deploy_wait_polls_when_no_event_stream_is_free(node_factory: Any, tmp_path: Path) -> None:
    node = node_factory(extra={"WEBSERVER": {"max_streams": 1}})
    held = node.get("/v1/events", stream=True, timeout=30)  # the only stream slot
    try:
        assert held.status_code == 200
        path = _blueprint(tmp_path, unique_name("polled"), "sleep 600")
        result = node.cli("deploy", str(path), "--wait", "--timeout", "60", "-o", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state"] == "RUNNING"
    finally:
        held.close()
