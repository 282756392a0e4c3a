"""Discovery wire format: the original's bare-IP payloads and the retained presence."""

from __future__ import annotations

import json

import pytest

from motey.communication.protocol import discovery as proto
from motey.errors import ValidationError
from motey.models.node import DEFAULT_PORTS, Node, NodeLifecycle, NodeReachability

NODE_ID = "5b0c6a86-3f0e-4a55-9d1c-0f4a3c1e9e11"


def make_node(**kw: object) -> Node:
    values: dict = {
        "ip": "127.0.1.7",
        "id": NODE_ID,
        "name": "cell-7",
        "ports": {**DEFAULT_PORTS, "deploy_image_replier": 6092},
        "lifecycle": NodeLifecycle.OPERATE,
        "version": "1.0.0",
        "capabilities": [{"capability": "zigbee", "capability_type": "hardware", "source": "ipc"}],
        "load": 0.25,
    }
    values.update(kw)
    return Node(**values)  # type: ignore[arg-type]


def test_bare_ip_round_trip_is_the_original_payload() -> None:
    assert proto.encode_ip("127.0.1.2") == b"127.0.1.2"
    assert proto.decode_ip(b"127.0.1.2") == "127.0.1.2"
    assert proto.decode_ip(b" 10.0.0.5\n") == "10.0.0.5"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not-an-ip",
        b"300.1.1.1",
        b"::1",
        b"0.0.0.0",
        b"224.0.0.1",
        b"255.255.255.255",
        b"\xff\xfe",
        b"1" * 5000,
        b'{"ip": "127.0.0.1"}',
    ],
)
def test_bad_bare_ip_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        proto.decode_ip(payload)


def test_presence_round_trip_keeps_metadata() -> None:
    node = make_node()
    payload = proto.encode_presence(node)
    body = json.loads(payload)
    assert body["format"] == proto.PRESENCE_FORMAT
    assert body["state"] == "REACHABLE"
    assert "source" not in body["capabilities"][0]  # where a capability came from stays local
    decoded = proto.decode_presence(proto.presence_topic(NODE_ID), payload)
    assert decoded is not None
    assert decoded.ip == node.ip and decoded.id == NODE_ID and decoded.name == "cell-7"
    assert decoded.ports["deploy_image_replier"] == 6092
    assert decoded.lifecycle is NodeLifecycle.OPERATE
    assert decoded.state is NodeReachability.REACHABLE
    assert decoded.load == 0.25
    assert decoded.last_seen == 0.0  # the receiver stamps it with its own clock


def test_last_will_presence_is_unreachable() -> None:
    payload = proto.encode_presence(make_node(), NodeReachability.UNREACHABLE)
    decoded = proto.decode_presence(proto.presence_topic(NODE_ID), payload)
    assert decoded is not None and decoded.state is NodeReachability.UNREACHABLE


def test_empty_presence_means_the_node_left() -> None:
    assert proto.decode_presence(proto.presence_topic(NODE_ID), b"") is None


def test_missing_ports_default() -> None:
    body = json.loads(proto.encode_presence(make_node()))
    del body["ports"]
    decoded = proto.decode_presence(proto.presence_topic(NODE_ID), json.dumps(body).encode())
    assert decoded is not None and decoded.ports == DEFAULT_PORTS


def _presence_with(**changes: object) -> bytes:
    body = json.loads(proto.encode_presence(make_node()))
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "field"),
    [
        (proto.presence_topic(NODE_ID), b"{not json", "JSON"),
        (proto.presence_topic(NODE_ID), b"[1, 2]", "presence"),
        (proto.presence_topic(NODE_ID), _presence_with(ip="999.1.1.1"), "IPv4"),
        (proto.presence_topic(NODE_ID), _presence_with(ip=7), "ip"),
        (proto.presence_topic(NODE_ID), _presence_with(ports={"api": "x"}), "ports"),
        (proto.presence_topic(NODE_ID), _presence_with(ports={"api": 70000}), "ports"),
        (proto.presence_topic(NODE_ID), _presence_with(lifecycle="SLEEPING"), "lifecycle"),
        (proto.presence_topic(NODE_ID), _presence_with(state="MAYBE"), "state"),
        (proto.presence_topic(NODE_ID), _presence_with(load="high"), "load"),
        (proto.presence_topic(NODE_ID), _presence_with(capabilities={"a": 1}), "capabilities"),
        (proto.presence_topic(NODE_ID), _presence_with(id="someone-else"), "another node"),
        (proto.presence_topic("x/y"), _presence_with(), "node id"),
        ("motey/v1/other", _presence_with(), "presence topic"),
        (proto.presence_topic(NODE_ID), b"{" + b" " * (70 * 1024) + b"}", "exceeds"),
    ],
)
def test_malformed_presence_is_refused(topic: str, payload: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        proto.decode_presence(topic, payload)
    assert field in info.value.message
