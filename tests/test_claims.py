"""The image-claims request (issue 10): a node back from a cut asks an owner which of its
images it keeps. Raw pyzmq against a real node's claims replier, and the protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from motey.communication.protocol import node_requests as proto
from motey.errors import ValidationError
from motey.models.node import DEFAULT_PORTS
from tests.helpers import TEST_IMAGE, MoteyNode, unique_name


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def ask(ctx: zmq.Context, node: MoteyNode, payload: bytes) -> dict[str, Any]:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{node.ip}:{DEFAULT_PORTS['image_claims_replier']}")
    try:
        sock.send(payload)
        assert sock.poll(5000, zmq.POLLIN), "no reply"
        return json.loads(sock.recv())
    finally:
        sock.close(linger=0)


def test_an_owner_answers_claims_and_refuses_malformed_ones(
    ctx: zmq.Context, node_factory: Any
) -> None:
    # raw pyzmq to the node's port: say the transport explicitly
    owner = node_factory(extra={"SECURITY": {"mode": "open"}})
    text = (
        f"service_name: {unique_name('claims')}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 600"}\n'
    )
    sid = owner.post_yaml(text).json()["id"]
    image_id = owner.wait_service_state(sid, "RUNNING")["images"][0]["id"]

    # the image runs on the owner itself: another node claiming it must stop its copy
    other = ask(ctx, owner, proto.encode_claims_request("some-other-node", [image_id]))
    assert other == {"keep": [], "stop": [image_id]}
    mine = ask(ctx, owner, proto.encode_claims_request(owner.node_id or "", [image_id]))
    assert mine == {"keep": [image_id], "stop": []}

    for bad in (
        b"not json",
        b'{"version": 2, "node_id": "x"}',
        b'{"version": 2, "node_id": "x", "images": ["a b"]}',
    ):
        reply = ask(ctx, owner, bad)
        assert reply["error"] == "ValidationError", reply
    # the loop survived every one of them
    assert ask(ctx, owner, proto.encode_claims_request("n", []))["keep"] == []


def test_claims_protocol_round_trip_and_errors() -> None:
    raw = proto.encode_claims_request("node-1", ["i1", "i2"])
    assert proto.decode_claims_request(raw) == ("node-1", ["i1", "i2"])
    assert proto.decode_claims_reply(proto.encode_claims_reply(["i1"], ["i2"])) == {
        "keep": ["i1"],
        "stop": ["i2"],
    }
    with pytest.raises(ValidationError):
        proto.decode_claims_request(b'{"version": 1, "node_id": "n", "images": []}')
    with pytest.raises(ValidationError):
        proto.decode_claims_reply(b'{"keep": ["ok"]}')
    error = proto.encode_error(ValidationError("bad", field="images"))
    with pytest.raises(ValidationError):
        proto.decode_claims_reply(error)
