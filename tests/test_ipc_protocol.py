"""Decoding hardware events: the original's topics, the thesis' topic, and bad input."""

from __future__ import annotations

import json

import pytest

from motey.communication import ipc_protocol
from motey.communication.ipc_protocol import decode, encode
from motey.errors import ValidationError

ZIGBEE = {"capability": "zigbee", "capability_type": "hardware"}


def frame(text: str) -> list[bytes]:
    return [text.encode()]


def test_original_add_and_remove_messages() -> None:
    # Byte for byte what the original publisher script sends (json.dumps of a list).
    added = decode(frame('add_capability#[{"capability": "zigbee", "capability_type": "x"}]'))
    assert added.topic == "add_capability"
    assert added.changes == [("add", {"capability": "zigbee", "capability_type": "x"})]
    removed = decode(frame(f"remove_capability#{json.dumps([ZIGBEE])}"))
    assert removed.changes == [("remove", ZIGBEE)]


def test_names_with_single_spaces_are_accepted() -> None:
    # The original's own examples used "test capability"; it took any text.
    entry = {"capability": "test capability", "capability_type": "x"}
    event = decode(frame(f"add_capability#{json.dumps([entry])}"))
    assert event.changes == [("add", {"capability": "test capability", "capability_type": "x"})]


def test_capabilityevent_entries_carry_their_action_in_order() -> None:
    body = [
        ZIGBEE | {"action": "add"},
        {"capability": "camera", "capability_type": "hardware", "action": "remove"},
        {"capability": "gpu", "capability_type": "hardware", "value": 2},
    ]
    event = decode(frame(f"capabilityevent#{json.dumps(body)}"))
    assert event.changes == [
        ("add", ZIGBEE),
        ("remove", {"capability": "camera", "capability_type": "hardware"}),
        ("add", {"capability": "gpu", "capability_type": "hardware", "value": 2}),
    ]


def test_a_single_object_is_a_one_entry_list() -> None:
    event = decode(frame(f"capabilityevent#{json.dumps(ZIGBEE)}"))
    assert event.changes == [("add", ZIGBEE)]


def test_encode_roundtrip() -> None:
    data = encode("remove_capability", [ZIGBEE])
    assert data.startswith(b"remove_capability#")
    assert decode([data]).changes == [("remove", ZIGBEE)]
    with pytest.raises(ValueError):
        encode("nope", [ZIGBEE])


@pytest.mark.parametrize(
    ("frames", "says"),
    [
        ([b"add_capability"], "no '#'"),
        ([b'[{"capability": "zigbee"}]'], "no '#'"),
        ([b"hello#[]"], "unknown topic"),
        ([b"add_capability#not json"], "is not JSON"),
        (
            [b"capabilityevent#{'capability': 'zigbee', 'capability_type': 'hardware'}"],
            "single quotes are Python",
        ),
        ([b"add_capability#[]"], "should be non-empty"),
        ([b'add_capability#[{"capability": "zigbee"}]'], "capability_type"),
        ([b'add_capability#[{"capability": "zig  bee", "capability_type": "x"}]'], "not a capa"),
        ([b'add_capability#[{"capability": 5, "capability_type": "x"}]'], "[0].capability"),
        ([b'add_capability#"zigbee"'], "is not of type"),
        (
            [b'capabilityevent#[{"capability": "a", "capability_type": "x", "action": "x"}]'],
            "action",
        ),
        (
            [b'add_capability#[{"capability": "a", "capability_type": "x", "action": "remove"}]'],
            "send it as capabilityevent",
        ),
        ([b"add_capability#\xff\xfe"], "not UTF-8"),
        ([b"add_capability", b"[]"], "2 frames"),
        ([b"add_capability#" + b" " * ipc_protocol.MAX_MESSAGE_BYTES + b"[]"], "larger than"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(frames: list[bytes], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode(frames)
    assert says in info.value.message, info.value.message


def test_too_many_entries_are_refused() -> None:
    body = [ZIGBEE] * 257
    with pytest.raises(ValidationError):
        decode(frame(f"add_capability#{json.dumps(body)}"))
