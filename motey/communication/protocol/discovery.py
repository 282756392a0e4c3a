"""MQTT discovery messages: the original's bare-IP topics plus retained presence.

Topics (all under ``motey/v1/``):

``register``, ``remove``, ``nodes_request``
    The original Motey's topics; the payload is the bare IPv4 address as text.
``nodes/<node id>``
    Retained presence: a JSON object with the node's metadata. An empty retained
    payload means the node left cleanly; the last will is a presence whose ``state`` is
    ``UNREACHABLE``. A presence is published when it changes, not periodically; one
    with ``"resync": true`` (sent after a reconnect) asks every node that receives it
    live to publish its own presence once. The original ignores these topics.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import Any

from motey.errors import ValidationError
from motey.models.node import DEFAULT_PORTS, Node, NodeLifecycle, NodeReachability
from motey.schemas.cluster import NODE_ID_PATTERN, PRESENCE_SCHEMA
from motey.schemas.limits import loads_json
from motey.schemas.validation import validate

TOPIC_REGISTER = "motey/v1/register"
TOPIC_REMOVE = "motey/v1/remove"
TOPIC_NODES_REQUEST = "motey/v1/nodes_request"
TOPIC_PRESENCE_PREFIX = "motey/v1/nodes/"
TOPIC_PRESENCE_FILTER = TOPIC_PRESENCE_PREFIX + "+"

#: Every topic a node subscribes to.
SUBSCRIPTIONS = (TOPIC_REGISTER, TOPIC_REMOVE, TOPIC_NODES_REQUEST, TOPIC_PRESENCE_FILTER)

#: Version of the presence payload; receivers accept this and newer (extra keys ignored).
PRESENCE_FORMAT = 1

#: Payload limits: an IPv4 address is at most 15 characters; a presence with 256
#: capability entries stays well below 64 KiB.
MAX_IP_PAYLOAD = 64
MAX_PRESENCE_PAYLOAD = 64 * 1024

_NODE_ID = re.compile(NODE_ID_PATTERN)


def encode_ip(ip: str) -> bytes:
    """The payload of ``register``, ``remove`` and ``nodes_request``: the address as text."""
    return ip.encode("ascii")


def decode_ip(payload: bytes) -> str:
    """The IPv4 address in a bare-IP payload, or :class:`ValidationError`.

    Unspecified, multicast and broadcast addresses are refused: no node can be
    reached there, and storing one would only make placement wait for a timeout.
    """
    if len(payload) > MAX_IP_PAYLOAD:
        raise ValidationError(f"payload of {len(payload)} bytes is too long for an IPv4 address")
    try:
        text = payload.decode("ascii").strip()
        address = ipaddress.IPv4Address(text)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError(f"payload {payload[:32]!r} is not an IPv4 address") from None
    if address.is_unspecified or address.is_multicast or text == "255.255.255.255":
        raise ValidationError(f"{text} is not the address of a node")
    return str(address)


def presence_topic(node_id: str) -> str:
    """The retained presence topic of one node."""
    return TOPIC_PRESENCE_PREFIX + node_id


def node_id_from_topic(topic: str) -> str:
    """The node id at the end of a presence topic, or :class:`ValidationError`."""
    if not topic.startswith(TOPIC_PRESENCE_PREFIX):
        raise ValidationError(f"{topic!r} is not a presence topic")
    node_id = topic[len(TOPIC_PRESENCE_PREFIX) :]
    if not _NODE_ID.match(node_id):
        raise ValidationError(f"presence topic {topic!r} does not end in a node id")
    return node_id


def encode_presence(
    node: Node, state: NodeReachability = NodeReachability.REACHABLE, resync: bool = False
) -> bytes:
    """The retained presence payload of ``node`` (``state`` UNREACHABLE for the last will;
    ``resync`` asks the receivers to publish their own presence once)."""
    body: dict[str, Any] = {
        "format": PRESENCE_FORMAT,
        "id": node.id,
        "ip": node.ip,
        "name": node.name,
        "ports": dict(node.ports),
        "state": state.value,
        "lifecycle": node.lifecycle.value,
        "version": node.version,
        "load": node.load,
        "images": node.images,
        "capabilities": [
            {k: v for k, v in c.items() if k in ("capability", "capability_type", "value")}
            for c in node.capabilities
        ],
        "timestamp": time.time(),
    }
    if node.curve_key:
        body["curve_key"] = node.curve_key
        body["curve_sig"] = node.curve_signature
    if resync:
        body["resync"] = True
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


#: Presence keys that change from one periodic presence to the next.
VOLATILE_PRESENCE_KEYS = frozenset({"timestamp", "load", "images"})


def _number(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, int | float)


def _volatile_valid(data: dict[str, Any]) -> bool:
    """The schema's rules for the volatile keys, checked by hand (a few µs)."""
    load, images = data.get("load"), data.get("images")
    return (
        _number(data.get("timestamp"))
        and (load is None or (_number(load) and load >= 0))
        and (images is None or (_number(images, integer=True) and images >= 0))
    )


def decode_presence(
    topic: str, payload: bytes, seen: dict[str, dict[str, Any]] | None = None
) -> Node | None:
    """The node a presence message describes; ``None`` for an empty (cleared) one.

    See :func:`decode_presence_message`, which also tells whether it asks for a resync.
    """
    return decode_presence_message(topic, payload, seen)[0]


def decode_presence_message(
    topic: str, payload: bytes, seen: dict[str, dict[str, Any]] | None = None
) -> tuple[Node | None, bool]:
    """The node a presence message describes (``None`` for an empty, cleared one) and
    whether the presence asks its receivers to publish theirs (``resync``).

    ``last_seen`` is left at 0: the receiver stamps it with its own clock, so that
    clock skew between nodes never makes a node look stale.

    ``seen`` (topic -> the last valid presence without its volatile keys) lets a
    periodic presence that repeats what was already validated skip the full schema
    check, which costs about half a millisecond per message and is most of a big cell's
    idle work; the volatile keys are still checked. See docs/scale.md.
    """
    node_id = node_id_from_topic(topic)
    if not payload:
        return None, False
    if len(payload) > MAX_PRESENCE_PAYLOAD:
        raise ValidationError(f"presence of {len(payload)} bytes exceeds {MAX_PRESENCE_PAYLOAD}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"presence is not JSON: {exc}") from None
    data = loads_json(text, "presence")
    stable = (
        {k: v for k, v in data.items() if k not in VOLATILE_PRESENCE_KEYS}
        if isinstance(data, dict)
        else None
    )
    known = seen.get(topic) if seen is not None and stable is not None else None
    if not (known is not None and known == stable and _volatile_valid(data)):
        validate(data, PRESENCE_SCHEMA, "presence")
    if data["id"] != node_id:
        raise ValidationError(f"presence on {topic} names another node id {data['id']!r}")
    ip = decode_ip(data["ip"].encode("ascii", "replace"))
    if seen is not None and stable is not None:
        seen[topic] = stable
    ports = dict(DEFAULT_PORTS)
    ports.update(data.get("ports") or {})
    load = data.get("load")
    node = Node(
        ip=ip,
        id=node_id,
        name=data.get("name"),
        ports=ports,
        state=NodeReachability(data["state"]),
        lifecycle=NodeLifecycle(data["lifecycle"]),
        version=data.get("version"),
        last_seen=0.0,
        capabilities=list(data.get("capabilities") or []),
        load=float(load) if load is not None else None,
        images=data.get("images"),
        curve_key=data.get("curve_key"),
        curve_signature=data.get("curve_sig"),
    )
    return node, data.get("resync") is True
