"""The node-to-node client against a real node, a silent fake node and an empty address."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import docker
import pytest
import zmq

from motey.communication.zeromq_client import ZeroMQNodeClient
from motey.errors import CommunicationError, NodeNotOperational, UnprocessableError
from motey.models.image import Image, ImageState
from motey.models.node import DEFAULT_PORTS, Node
from tests.cluster_helpers import OriginalPeer
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, next_loopback

TIMEOUT = 1.0


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def client(ctx: zmq.Context, no_thread_leaks: None) -> Iterator[ZeroMQNodeClient]:
    remote = ZeroMQNodeClient(ctx, request_timeout=TIMEOUT, action_timeout=30)
    remote.start()
    yield remote
    remote.stop()


def image_for(owner: str = "test-owner", capabilities: list[str] | None = None) -> Image:
    return Image(
        id=str(uuid.uuid4()),
        name=TEST_IMAGE,
        parameters={"command": "sleep 300"},
        capabilities=capabilities or [],
        service_id="svc-test",
        owner_id=owner,
    )


def test_full_exchange_with_a_real_node(
    client: ZeroMQNodeClient, node_factory: Any, docker_client: docker.DockerClient
) -> None:
    # the client's plain exchange with a real node: open mode (CURVE: test_security_cell.py)
    peer: MoteyNode = node_factory(capabilities=["zigbee"], extra={"SECURITY": {"mode": "open"}})
    target = Node(ip=peer.ip, name=peer.name, version="1.0.0")  # announced by presence
    legacy = Node(ip=peer.ip)  # known by bare IP only: gets the original formats

    info = client.describe(target)
    assert info["node_id"] == peer.node_id and info["lifecycle"] == "OPERATE"
    assert "zigbee" in {c["capability"] for c in info["capabilities"]}

    image = image_for(capabilities=["zigbee"])
    container_id = client.deploy_image(target, image)
    container = docker_client.containers.get(container_id)
    assert container.labels["motey.node_id"] == peer.node_id
    assert container.labels["motey.owner_id"] == "test-owner"
    assert container.labels["motey.image_id"] == image.id

    status = client.image_status(target, image)
    assert status.state is ImageState.RUNNING and status.instance_id == container_id
    assert client.image_status(legacy, image).state is ImageState.RUNNING
    # an original owner keeps the container id as the image id and sends it back
    for kept in (container_id, container_id[:12]):
        by_container = replace(image, id="", instance_id=kept)
        assert client.image_status(legacy, by_container).state is ImageState.RUNNING
    assert client.terminate_image(target, image) is True
    assert client.terminate_image(target, image) is False  # idempotent
    assert client.image_status(target, image).exists is False

    with pytest.raises(UnprocessableError, match="camera"):
        client.deploy_image(target, image_for(capabilities=["camera"]))
    assert peer.put_json("/v1/node", {"lifecycle": "RECOVER"}).ok
    with pytest.raises(NodeNotOperational, match=peer.name):
        client.deploy_image(target, image_for())


def test_a_silent_node_times_out_and_the_socket_is_renewed(
    client: ZeroMQNodeClient, ctx: zmq.Context
) -> None:
    """A ROUTER that ignores the first request and answers the second one.

    A REQ socket that timed out could not send again; the second request only gets
    through because the client replaced the socket.
    """
    ip = next_loopback()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(f"tcp://{ip}:{DEFAULT_PORTS['capabilities_replier']}")
    seen: list[bytes] = []
    stop = threading.Event()

    def fake_node() -> None:
        while not stop.is_set():
            if not router.poll(100, zmq.POLLIN):
                continue
            envelope, empty, body = router.recv_multipart()
            seen.append(body)
            if len(seen) >= 2:  # ignore the first request entirely
                reply = b'[{"capability": "late", "capability_type": "x"}]'
                router.send_multipart([envelope, empty, reply])

    thread = threading.Thread(target=fake_node, daemon=True)
    thread.start()
    try:
        fake = Node(ip=ip)
        started = time.monotonic()
        with pytest.raises(CommunicationError, match="did not answer"):
            client.describe(fake)
        assert time.monotonic() - started < TIMEOUT + 1
        info = client.describe(fake)
        assert info["capabilities"][0]["capability"] == "late"
        assert len(seen) == 2
    finally:
        stop.set()
        thread.join(timeout=5)
        router.close(linger=0)


def test_nothing_listening_is_a_bounded_error(client: ZeroMQNodeClient) -> None:
    dead = Node(ip=next_loopback(), name="gone")
    for call in (
        lambda: client.describe(dead),
        lambda: client.image_status(dead, image_for()),
    ):
        started = time.monotonic()
        with pytest.raises(CommunicationError, match="gone"):
            call()
        assert time.monotonic() - started < TIMEOUT + 1


def test_stop_ends_a_waiting_request(ctx: zmq.Context) -> None:
    client = ZeroMQNodeClient(ctx, request_timeout=30, action_timeout=30)
    client.start()
    errors: list[Exception] = []

    def ask() -> None:
        try:
            client.describe(Node(ip=next_loopback()))
        except CommunicationError as exc:
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    client.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert errors and "stopped" in str(errors[0])


def test_an_original_node_as_it_really_answers(
    client: ZeroMQNodeClient, ctx: zmq.Context, plain_mosquitto: Mosquitto
) -> None:
    """Its capability rows say ``type``, and its status replier never answers."""
    mosquitto = plain_mosquitto  # the original speaks plain MQTT
    rows = [
        {"capability": "docker", "type": "plugin"},
        {"capability": "zigbee", "type": "hardware"},
    ]
    peer = OriginalPeer(ctx, next_loopback(), rows, (mosquitto.ip, mosquitto.port))
    node = Node(ip=peer.ip)  # known by its bare-IP registration only
    image = image_for(capabilities=["zigbee"])
    image.node = peer.ip
    try:
        assert client.describe(node)["capabilities"] == [
            {"capability": "docker", "capability_type": "plugin"},
            {"capability": "zigbee", "capability_type": "hardware"},
        ]
        image.instance_id = client.deploy_image(node, image)
        assert image.instance_id in peer.deployed
        image.state = ImageState.RUNNING

        started = time.monotonic()
        status = client.image_status(node, image)
        assert time.monotonic() - started < TIMEOUT + 1.5
        assert status.known is False and status.state is ImageState.RUNNING
        assert "state unknown" in status.message and peer.ip in status.message
        # what it got is the whole image, its id being the container id it answered
        assert peer.requests_to("image_status_replier") == [
            {
                "id": image.instance_id,
                "name": TEST_IMAGE,
                "engine": "docker",
                "parameters": {"command": "sleep 300"},
                "capabilities": ["zigbee"],
                "node": peer.ip,
            }
        ]
        started = time.monotonic()
        assert client.image_status(node, image).known is False
        assert time.monotonic() - started < TIMEOUT / 2  # not asked (and waited for) again
        assert len(peer.requests_to("image_status_replier")) == 1

        assert client.terminate_image(node, image) is True  # it answers ""
        assert peer.requests_to("image_terminate_replier")[0]["id"] == image.instance_id
        assert peer.deployed == {}
    finally:
        peer.close()
    started = time.monotonic()
    with pytest.raises(CommunicationError, match="did not answer"):
        client.image_status(node, image)  # gone: an error, within one timeout
    assert time.monotonic() - started < TIMEOUT + 1
