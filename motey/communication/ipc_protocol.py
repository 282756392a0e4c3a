"""The wire format of local hardware-event publishers (ZeroMQ IPC, PUB → Motey's SUB).

A message is one frame ``<topic>#<json>``, the format of the original Motey and its
``scripts/addcapability.py``:

``add_capability#[{"capability": "zigbee", "capability_type": "hardware"}]``
    adds every entry;
``remove_capability#[{"capability": "zigbee", "capability_type": "hardware"}]``
    removes every entry;
``capabilityevent#[{"capability": "zigbee", "capability_type": "hardware", "action": "remove"}]``
    the thesis' topic: each entry says ``"action": "add"`` or ``"remove"`` and is applied
    in order; without ``action`` an entry is added. This is also what the original's
    first publisher script sent.

Entries may carry a ``value`` (``{"capability": "memory_mb", ..., "value": 512}``). A
single object is taken as a one-entry list (the thesis prints one). Everything else -
no ``#``, an unknown topic, bad JSON (the thesis' listing uses Python's single quotes,
which is not JSON), a schema failure, more than one frame, more than
:data:`MAX_MESSAGE_BYTES` - raises :class:`ValidationError` and changes nothing.
This module knows no sockets; :mod:`motey.communication.ipc_subscriber` moves the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from motey.errors import ValidationError
from motey.schemas.capability import CAPABILITY_EVENT_SCHEMA
from motey.schemas.limits import check_json_depth
from motey.schemas.validation import validate

TOPIC_ADD = "add_capability"
TOPIC_REMOVE = "remove_capability"
TOPIC_EVENT = "capabilityevent"
#: The topics Motey subscribes to (ZeroMQ delivers nothing without a subscription).
TOPICS = (TOPIC_ADD, TOPIC_REMOVE, TOPIC_EVENT)
DELIMITER = "#"
#: Longest message decoded; 256 entries of ordinary size fit easily.
MAX_MESSAGE_BYTES = 64 * 1024
#: Longer messages are dropped by ZeroMQ itself before they are buffered in memory.
MAX_TRANSPORT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CapabilityEvent:
    """A decoded message: the topic and the ordered ``(action, entry)`` changes."""

    topic: str
    changes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def encode(topic: str, entries: list[dict[str, Any]]) -> bytes:
    """One frame ``<topic>#<json>`` as publishers send it."""
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; use one of {', '.join(TOPICS)}")
    return f"{topic}{DELIMITER}{json.dumps(entries)}".encode()


def decode(frames: list[bytes]) -> CapabilityEvent:
    """Decode and validate one received message, or raise :class:`ValidationError`."""
    if len(frames) != 1:
        raise ValidationError(
            f"message has {len(frames)} frames; send one frame <topic>#<json>", field="(message)"
        )
    data = frames[0]
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"message of {len(data)} bytes is larger than {MAX_MESSAGE_BYTES} bytes",
            field="(message)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"message is not UTF-8: {exc}", field="(message)") from exc
    topic, sep, body = text.partition(DELIMITER)
    topic = topic.strip()
    if not sep:
        raise ValidationError(
            f"message {_excerpt(text)} has no {DELIMITER!r} between topic and JSON",
            field="(message)",
        )
    if topic not in TOPICS:
        raise ValidationError(
            f"unknown topic {topic[:64]!r}; expected one of {', '.join(TOPICS)}", field="topic"
        )
    check_json_depth(body, f"{topic} message")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        hint = " (single quotes are Python, not JSON)" if "'" in body[:200] else ""
        raise ValidationError(
            f"{topic}: body {_excerpt(body)} is not JSON{hint}: {exc}", field="(json)"
        ) from None
    if isinstance(payload, dict):
        payload = [payload]
    validate(payload, CAPABILITY_EVENT_SCHEMA, f"{topic} message")
    changes: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(payload):
        action = entry.get("action")
        if topic != TOPIC_EVENT:
            implied = "add" if topic == TOPIC_ADD else "remove"
            if action not in (None, implied):
                raise ValidationError(
                    f"{topic}: entry [{index}] says action {action!r}; "
                    f"send it as {TOPIC_EVENT} or leave action out",
                    field=f"[{index}].action",
                )
            action = implied
        changes.append((action or "add", {k: v for k, v in entry.items() if k != "action"}))
    return CapabilityEvent(topic, changes)


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
