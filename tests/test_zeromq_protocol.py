"""Node-to-node wire formats: the original's requests and replies and their extensions."""

from __future__ import annotations

import json

import pytest

from motey.communication.protocol import node_requests as proto
from motey.errors import CommunicationError, NodeNotOperational, ValidationError
from motey.models.image import Image, ImageState
from motey.val.plugin import InstanceStatus

DESCRIPTION = {
    "node_id": "n-1",
    "name": "cell",
    "ip": "127.0.1.1",
    "lifecycle": "OPERATE",
    "load": 0.5,
    "capabilities": [{"capability": "zigbee", "capability_type": "hardware"}],
}


@pytest.mark.parametrize("request_bytes", [b"", b"capabilities", b"[]", b'{"version": 1}', b"\xff"])
def test_original_capability_request_gets_the_list(request_bytes: bytes) -> None:
    version = proto.decode_capability_request(request_bytes)
    reply = json.loads(proto.encode_capability_reply(version, DESCRIPTION))
    assert reply == DESCRIPTION["capabilities"]


def test_extended_capability_request_gets_the_description() -> None:
    version = proto.decode_capability_request(proto.encode_capability_request())
    raw = proto.encode_capability_reply(version, DESCRIPTION)
    assert json.loads(raw)["node_id"] == "n-1"
    info = proto.decode_capability_reply(raw)
    assert info["lifecycle"] == "OPERATE" and info["load"] == 0.5
    assert info["capabilities"][0]["capability"] == "zigbee"


def test_original_capability_reply_is_an_operating_node() -> None:
    info = proto.decode_capability_reply(b'[{"capability": "gpu", "capability_type": "hw"}]')
    assert info["lifecycle"] == "OPERATE" and info["load"] is None
    assert info["capabilities"] == [{"capability": "gpu", "capability_type": "hw"}]


def test_capability_reply_of_a_real_original_node() -> None:
    """The original answers with its TinyDB rows, whose key is ``type``."""
    raw = (
        b'[{"capability": "docker", "type": "plugin"}, '
        b'{"capability": "zigbee", "type": "hardware"}]'
    )
    info = proto.decode_capability_reply(raw)
    assert info["lifecycle"] == "OPERATE"
    assert info["capabilities"] == [
        {"capability": "docker", "capability_type": "plugin"},
        {"capability": "zigbee", "capability_type": "hardware"},
    ]


def test_capability_reply_entries_with_extra_keys_and_odd_entries() -> None:
    raw = json.dumps(
        [
            {"capability": "gpu", "capability_type": "hw", "source": "rest", "doc_id": 4},
            {"capability": "test capability", "type": "person"},
            {"capability": "bare"},
            {"capability": 1, "type": "x"},  # unreadable: left out, the rest still counts
            "zigbee",
        ]
    ).encode()
    assert proto.decode_capability_reply(raw)["capabilities"] == [
        {"capability": "gpu", "capability_type": "hw"},
        {"capability": "test capability", "capability_type": "person"},
        {"capability": "bare", "capability_type": "unknown"},
    ]


@pytest.mark.parametrize("raw", [b"nope", b'{"capabilities": 3}', b"7", b'{"lifecycle": "X"}'])
def test_bad_capability_replies_are_errors(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        proto.decode_capability_reply(raw)


def test_deploy_request_round_trip() -> None:
    image = Image(
        id="img-1",
        name="busybox",
        parameters={"command": "sleep 1"},
        capabilities=["zigbee"],
        node="127.0.1.2",
        service_id="svc-1",
        owner_id="owner-1",
    )
    raw = proto.encode_deploy_request(image)
    body = json.loads(raw)
    assert {"id", "name", "engine", "parameters", "capabilities", "node"} <= set(body)
    decoded = proto.decode_deploy_request(raw)
    assert decoded.id == "img-1" and decoded.owner_id == "owner-1"
    assert decoded.capabilities == ["zigbee"] and decoded.parameters == {"command": "sleep 1"}


def test_original_deploy_request_with_empty_id_and_dict_capabilities() -> None:
    raw = json.dumps(
        {"id": "", "name": "busybox", "engine": "docker", "parameters": {}, "capabilities": {}}
    ).encode()
    image = proto.decode_deploy_request(raw)
    assert image.id  # a fresh id labels the container
    assert image.capabilities == [] and image.engine == "docker"
    # the original names no owner; it is never this node (no orphan removal at restart)
    assert image.owner_id == proto.UNKNOWN_OWNER


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"name": ""}',
        b'{"name": "x", "parameters": []}',
        b'{"name": "x", "capabilities": "zigbee"}',
        b'{"name": "x", "id": "has space"}',
        b"\xff\xfe",
        b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}',
    ],
)
def test_bad_deploy_requests_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        proto.decode_deploy_request(raw)


def test_deploy_reply_forms() -> None:
    assert proto.decode_deploy_reply(proto.encode_deploy_reply("abc123")) == "abc123"
    with pytest.raises(CommunicationError):
        proto.decode_deploy_reply(b"")  # the original's failure reply
    error = proto.encode_error(NodeNotOperational("node is in RECOVER"))
    with pytest.raises(NodeNotOperational, match="RECOVER"):
        proto.decode_deploy_reply(error)
    with pytest.raises(CommunicationError, match="boom"):
        proto.decode_deploy_reply(b'{"error": "Weird", "message": "boom"}')


def test_image_refs_bare_and_extended() -> None:
    ref = proto.decode_image_ref(b"img-1")
    assert (ref.id, ref.engine, ref.version) == ("img-1", "docker", 1)
    ref = proto.decode_image_ref(proto.encode_image_ref(Image(id="img-2", name="x", engine="e")))
    assert (ref.id, ref.engine, ref.version) == ("img-2", "e", 2)
    for bad in (b"", b"a b", b"{", b'{"version": 2}', b'{"version": 2, "id": "a/b"}'):
        with pytest.raises(ValidationError):
            proto.decode_image_ref(bad)


def test_the_original_sends_the_whole_image_to_status_and_terminate() -> None:
    """No ``version``: the image as deployed, its id being the container id it got."""
    container_id = "4f1c" + "0" * 60
    raw = json.dumps(
        {
            "id": container_id,
            "name": "busybox",
            "engine": "docker",
            "parameters": {"detach": True},
            "capabilities": ["zigbee"],
            "node": "127.0.1.2",
        }
    ).encode()
    ref = proto.decode_image_ref(raw)
    assert (ref.id, ref.engine, ref.version) == (container_id, "docker", 1)
    assert proto.encode_status_reply(ref, InstanceStatus(ImageState.RUNNING)) == b"RUNNING"
    assert proto.encode_terminate_reply(ref, True) == b"true"
    for bad in (b'{"name": "x"}', b'{"id": "", "name": "x"}', b'{"id": "a b"}', b"{}"):
        with pytest.raises(ValidationError):
            proto.decode_image_ref(bad)


def test_a_node_without_presence_gets_the_image_as_the_original_sends_it() -> None:
    image = Image(
        id="img-1",
        name="busybox",
        parameters={"command": "sleep 1"},
        capabilities=["plc"],
        node="127.0.1.9",
        instance_id="c0ffee" * 10,
    )
    body = json.loads(proto.encode_image_ref(image, extended=False))
    assert body == {
        "id": "c0ffee" * 10,  # what the original's deploy reply gave, as it keeps it
        "name": "busybox",
        "engine": "docker",
        "parameters": {"command": "sleep 1"},
        "capabilities": ["plc"],
        "node": "127.0.1.9",
    }
    assert proto.decode_image_ref(proto.encode_image_ref(image, extended=False)).id == "c0ffee" * 10


def test_status_replies() -> None:
    status = InstanceStatus(ImageState.ERROR, "exited with 3", instance_id="c1")
    original = proto.encode_status_reply(proto.ImageRef("i"), status)
    assert original == b"ERROR"
    assert proto.decode_status_reply(original).state is ImageState.ERROR
    extended = proto.encode_status_reply(proto.ImageRef("i", version=2), status)
    decoded = proto.decode_status_reply(extended)
    assert decoded == status
    with pytest.raises(ValidationError):
        proto.decode_status_reply(b"SLEEPING")


def test_terminate_replies() -> None:
    assert proto.encode_terminate_reply(proto.ImageRef("i"), True) == b"true"
    assert proto.decode_terminate_reply(b"true") is True
    assert proto.decode_terminate_reply(b"false") is False
    assert proto.decode_terminate_reply(b"") is True  # the original replies nothing defined
    extended = proto.encode_terminate_reply(proto.ImageRef("i", version=2), False)
    assert proto.decode_terminate_reply(extended) is False


def test_errors_that_are_not_motey_errors_are_internal() -> None:
    body = json.loads(proto.encode_error(RuntimeError("bug")))
    assert body == {"error": "InternalError", "message": "RuntimeError: bug"}
