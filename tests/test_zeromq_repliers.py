"""The ZeroMQ repliers of a real node process, spoken to through raw REQ sockets.

Every malformed request gets an error reply (or, above the size limit, a dropped
connection) and the loop keeps serving: the valid request after it is answered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from motey.models.node import DEFAULT_PORTS
from tests.helpers import TEST_IMAGE, MoteyNode

TIMEOUT_MS = 5000
OPEN = {"SECURITY": {"mode": "open"}}
HUGE = b"x" * (2 * 1024 * 1024)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def request(
    ctx: zmq.Context, node: MoteyNode, port_key: str, *frames: bytes, timeout_ms: int = TIMEOUT_MS
) -> bytes | None:
    """One REQ/REP exchange on a fresh socket; ``None`` when no reply came in time."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.ip}:{DEFAULT_PORTS[port_key]}")
    try:
        sock.send_multipart(list(frames))
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return sock.recv()
    finally:
        sock.close(linger=0)


def error_of(reply: bytes | None) -> dict[str, Any]:
    assert reply is not None, "no reply"
    body = json.loads(reply)
    assert isinstance(body, dict) and "error" in body, body
    return body


def original_image(image_id: str, capabilities: Any = None) -> bytes:
    """An image exactly as the original Motey sends it to the deploy replier."""
    return json.dumps(
        {
            "id": image_id,
            "name": TEST_IMAGE,
            "engine": "docker",
            "parameters": {"command": "sleep 300"},
            "capabilities": capabilities if capabilities is not None else {},
            "node": "127.0.0.1",
        }
    ).encode()


@pytest.fixture
def peer(node_factory: Any) -> MoteyNode:
    # raw pyzmq in the original's formats: an open-mode node (secure: tests/test_security_cell.py)
    return node_factory(capabilities=["zigbee", "arch_test=x1"], extra=OPEN)


def test_capability_replier_speaks_both_formats(ctx: zmq.Context, peer: MoteyNode) -> None:
    original = json.loads(request(ctx, peer, "capabilities_replier", b"") or b"null")
    assert isinstance(original, list)
    names = {c["capability"] for c in original}
    assert {"zigbee", "arch_test"} <= names
    assert all("capability_type" in c for c in original)

    extended = json.loads(request(ctx, peer, "capabilities_replier", b'{"version": 2}') or b"{}")
    assert extended["node_id"] == peer.node_id
    assert extended["lifecycle"] == "OPERATE"
    assert isinstance(extended["load"], float)
    assert {c["capability"] for c in extended["capabilities"]} == names


def test_malformed_requests_get_error_replies_and_loops_survive(
    ctx: zmq.Context, peer: MoteyNode
) -> None:
    junk = [b"\xff\xfe\x00", b"{not json", b"[]", b'{"name": 5}', b"", b"a b c"]
    for port_key in ("deploy_image_replier", "image_status_replier", "image_terminate_replier"):
        for raw in junk:
            body = error_of(request(ctx, peer, port_key, raw))
            assert body["error"] == "ValidationError", (port_key, raw, body)
        # two frames in one request
        assert error_of(request(ctx, peer, port_key, b"a", b"b"))["error"] == "ValidationError"
        # above the size limit ZeroMQ drops the connection: no reply, but no harm either
        assert request(ctx, peer, port_key, HUGE, timeout_ms=500) is None
    assert request(ctx, peer, "capabilities_replier", HUGE, timeout_ms=500) is None

    # every loop still answers a valid request
    assert isinstance(json.loads(request(ctx, peer, "capabilities_replier", b"?") or b""), list)
    missing = str(uuid.uuid4())
    assert request(ctx, peer, "image_status_replier", missing.encode()) == b"ERROR"
    assert request(ctx, peer, "image_terminate_replier", missing.encode()) == b"false"
    image_id = str(uuid.uuid4())
    container_id = request(ctx, peer, "deploy_image_replier", original_image(image_id))
    assert container_id and not container_id.startswith(b"{"), container_id
    assert request(ctx, peer, "image_status_replier", image_id.encode()) == b"RUNNING"
    assert request(ctx, peer, "image_terminate_replier", image_id.encode()) == b"true"
    assert request(ctx, peer, "image_status_replier", image_id.encode()) == b"ERROR"


def test_extended_status_and_terminate(ctx: zmq.Context, peer: MoteyNode) -> None:
    image_id = str(uuid.uuid4())
    assert request(ctx, peer, "deploy_image_replier", original_image(image_id, ["zigbee"]))
    ref = json.dumps({"version": 2, "id": image_id, "engine": "docker"}).encode()
    status = json.loads(request(ctx, peer, "image_status_replier", ref) or b"{}")
    assert status["state"] == "RUNNING" and status["exists"] is True and status["instance_id"]
    assert json.loads(request(ctx, peer, "image_terminate_replier", ref) or b"{}") == {
        "terminated": True
    }
    unknown = json.dumps({"version": 2, "id": image_id, "engine": "nope"}).encode()
    assert error_of(request(ctx, peer, "image_status_replier", unknown))["error"] in (
        "UnprocessableError",
        "EngineError",
    )


def test_deploy_refuses_what_the_node_cannot_meet(ctx: zmq.Context, peer: MoteyNode) -> None:
    body = error_of(
        request(ctx, peer, "deploy_image_replier", original_image("img-x", ["camera", "zigbee"]))
    )
    assert body["error"] == "UnprocessableError"
    assert "camera" in body["message"] and "zigbee" not in body["message"]
    bad_params = json.loads(original_image("img-y"))
    bad_params["parameters"] = {"no_such_docker_option": 1}
    body = error_of(request(ctx, peer, "deploy_image_replier", json.dumps(bad_params).encode()))
    assert body["error"] == "ValidationError" and "no_such_docker_option" in body["message"]


def test_node_outside_operate_refuses_deployments(ctx: zmq.Context, peer: MoteyNode) -> None:
    assert peer.put_json("/v1/node", {"lifecycle": "RECOVER", "reason": "maintenance"}).ok
    body = error_of(request(ctx, peer, "deploy_image_replier", original_image("img-z")))
    assert body["error"] == "NodeNotOperational"
    assert "RECOVER" in body["message"] and "maintenance" in body["message"]
    extended = json.loads(request(ctx, peer, "capabilities_replier", b'{"version": 2}') or b"{}")
    assert extended["lifecycle"] == "RECOVER"
    assert peer.put_json("/v1/node", {"lifecycle": "OPERATE"}).ok
    assert not request(ctx, peer, "deploy_image_replier", original_image("img-z")).startswith(b"{")
