"""Hostile input against a real node: alias bombs, deep nesting, bad Docker parameters,
bad image references and host-reaching blueprints, answered with a 4xx at once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from motey.errors import ValidationError
from motey.models.node import DEFAULT_PORTS
from motey.orchestrator.blueprint import load_blueprint
from motey.schemas.limits import MAX_DEPTH, check_json_depth, loads_json, safe_load_yaml
from tests.helpers import TEST_IMAGE, MoteyNode, unique_name


def alias_bomb() -> str:
    """The issue's bomb: 7 levels of 9 aliases each under ``parameters.labels``."""
    lines = [
        "service_name: bomb",
        "images:",
        f"  - name: {TEST_IMAGE}",
        "    parameters:",
        "      labels:",
        '        a0: &a0 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    ]
    for level in range(1, 8):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"        a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# -- in process --------------------------------------------------------------------------


def test_alias_bomb_is_refused_before_it_expands() -> None:
    text = alias_bomb()
    assert 500 < len(text.encode()) < 700
    started = time.monotonic()
    with pytest.raises(ValidationError, match="alias bomb"):
        load_blueprint(text)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50000,
        "{" * 50000,
        "a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)),
        "x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    ],
)
def test_deep_yaml_is_refused_without_recursing(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(ValidationError, match="nested deeper"):
        safe_load_yaml(text)
    assert time.monotonic() - started < 1.0


def test_recursive_alias_and_too_many_aliases_are_refused() -> None:
    with pytest.raises(ValidationError, match="recursive"):
        safe_load_yaml("a: &a [*a]\n")
    many = "a: &a 1\nb: [" + ",".join(["*a"] * 101) + "]\n"
    with pytest.raises(ValidationError, match="aliases"):
        safe_load_yaml(many)


def test_ordinary_anchors_still_work() -> None:
    data = safe_load_yaml("base: &env {A: '1'}\nimage: {environment: *env}\n")
    assert data["image"]["environment"] == {"A": "1"}


def test_json_depth_check_ignores_brackets_inside_strings() -> None:
    assert loads_json('{"a": "' + "[" * 1000 + '"}', "body") == {"a": "[" * 1000}
    check_json_depth("[" * MAX_DEPTH + "]" * MAX_DEPTH, "body")
    for body in ("[" * 50000, "[" * (MAX_DEPTH + 1), '{"a":' * 50000):
        with pytest.raises(ValidationError, match="nested deeper"):
            loads_json(body, "body")


@pytest.mark.parametrize(
    "text", ['"\\' * 500_000, '"' + "a" * 1_000_000, ('"' + "a" * 100) * 10_000]
)
def test_depth_scan_stays_linear_on_unterminated_strings(text: str) -> None:
    started = time.monotonic()
    check_json_depth(text, "body")  # a quadratic scan would take minutes here
    assert time.monotonic() - started < 3.0


# -- a real node -------------------------------------------------------------------------


def image_blueprint(parameters: str = "", name: str = TEST_IMAGE) -> str:
    return (
        f"service_name: {unique_name()}\nimages:\n  - name: {name!r}\n    parameters:\n"
        f"      command: sleep 300\n{parameters}"
    )


def rss(node: MoteyNode) -> int:
    assert node.process is not None
    return int(psutil.Process(node.process.pid).memory_info().rss)


def services_file(node: MoteyNode) -> Path:
    return node.dir / "db" / "services.json"


def test_bomb_and_deep_bodies_refused_fast_nothing_stored_rss_unchanged(node: MoteyNode) -> None:
    assert node.get("/v1/service").json() == []
    node.post_yaml(image_blueprint(name="--invalid"))  # warm the code paths once
    before = rss(node)
    size_before = services_file(node).stat().st_size if services_file(node).exists() else 0
    attacks = [
        ("POST", "/v1/service", alias_bomb(), "application/x-yaml"),
        ("POST", "/v1/service", "[" * 50000, "application/x-yaml"),
        ("DELETE", "/v1/service", alias_bomb(), "application/x-yaml"),
        ("PUT", "/v1/capabilities", "[" * 50000, "application/json"),
        ("DELETE", "/v1/capabilities", "[" * 50000, "application/json"),
        ("PUT", "/v1/node", '{"a":' * 50000, "application/json"),
    ]
    for method, path, body, content_type in attacks:
        started = time.monotonic()
        r = node.request(method, path, data=body.encode(), headers={"Content-Type": content_type})
        elapsed = time.monotonic() - started
        assert r.status_code == 400, (method, path, r.status_code, r.text[:300])
        assert elapsed < 0.5, (method, path, elapsed)
        assert r.json()["error"] == "ValidationError"
    assert node.get("/v1/service").json() == []
    size_after = services_file(node).stat().st_size if services_file(node).exists() else 0
    assert size_after == size_before
    assert rss(node) - before < 10 * 1024 * 1024
    log = node.log()
    assert "Traceback" not in log and "RecursionError" not in log


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ("      ports: {abc: xyz}\n", "images[0].parameters.ports"),
        ("      ports: {'99999/tcp': 80}\n", "images[0].parameters.ports"),
        ("      labels: {1: 2}\n", "images[0].parameters.labels"),
        ("      mem_limit: -1\n", "images[0].parameters.mem_limit"),
        ("      shm_size: lots\n", "images[0].parameters.shm_size"),
        ("      name: ../../etc\n", "images[0].parameters.name"),
        ("      environment: {'A=B': x}\n", "images[0].parameters.environment"),
        ("      environment: [1, 2]\n", "images[0].parameters.environment"),
        ("      cpu_shares: -5\n", "images[0].parameters.cpu_shares"),
        ("      restart_policy: {Name: sometimes}\n", "images[0].parameters.restart_policy"),
    ],
)
def test_docker_parameter_values_checked_at_post(
    node: MoteyNode, parameters: str, field: str
) -> None:
    r = node.post_yaml(image_blueprint(parameters))
    assert r.status_code == 400, r.text
    assert r.json()["field"].startswith(field), r.json()
    assert node.get("/v1/service").json() == []


def test_command_must_be_text(node: MoteyNode) -> None:
    blueprint = (
        f"service_name: {unique_name()}\nimages:\n  - name: {TEST_IMAGE}\n"
        "    parameters:\n      command: {a: b}\n"
    )
    r = node.post_yaml(blueprint)
    assert r.status_code == 400 and r.json()["field"].startswith("images[0].parameters.command")


@pytest.mark.parametrize("name", ["--privileged", "busy box", "UPPER/case", "a:b:c", "../x"])
def test_invalid_image_reference_is_400(node: MoteyNode, name: str) -> None:
    r = node.post_yaml(image_blueprint(name=name))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "images[0].name"


@pytest.mark.parametrize(
    ("parameters", "key"),
    [
        ("      volumes: ['/:/host:rw']\n", "allowed_bind_paths"),
        ("      volumes: ['/var/run/docker.sock:/s']\n", "allowed_bind_paths"),
        ("      network_mode: host\n", "allow_host_network"),
        ("      cap_add: [SYS_ADMIN]\n", "allowed_cap_add"),
        ("      user: '0:0'\n", "allow_root_user"),
        ("      restart_policy: {Name: always}\n", "allow_restart_policy"),
        ("      privileged: true\n", "allow_privileged"),
    ],
)
def test_post_answers_403_naming_parameter_and_policy_key(
    node: MoteyNode, parameters: str, key: str
) -> None:
    r = node.post_yaml(image_blueprint(parameters))
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "PolicyError"
    assert body["details"]["policy_key"] == key
    assert body["field"].startswith("images[0].parameters.")
    assert f"[POLICY] {key}" in body["message"]
    assert node.get("/v1/service").json() == []


def test_deep_zeromq_requests_get_error_replies_without_traceback(node_factory: Any) -> None:
    # Raw pyzmq in the original's plain format: an open-mode node.
    node: MoteyNode = node_factory(extra={"SECURITY": {"mode": "open"}})
    context: zmq.Context[Any] = zmq.Context()
    try:
        for port_key in ("deploy_image_replier", "image_status_replier", "capabilities_replier"):
            for body in (b"[" * 50000, b'{"a":' * 50000, b"{" + b'"x":[' * 40):
                sock = context.socket(zmq.REQ)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(f"tcp://{node.ip}:{DEFAULT_PORTS[port_key]}")
                sock.send(body)
                assert sock.poll(5000, zmq.POLLIN), (port_key, "no reply")
                reply = sock.recv()
                sock.close(linger=0)
                if port_key == "capabilities_replier":
                    assert isinstance(json.loads(reply), list)  # the original ignores the body
                    continue
                error = json.loads(reply)
                assert error["error"] == "ValidationError", (port_key, error)
    finally:
        context.destroy(linger=0)
    assert "Traceback" not in node.log() and "RecursionError" not in node.log()
