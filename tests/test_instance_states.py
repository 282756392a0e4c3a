"""The instance state cache (motey/val/states.py) and the node-to-node reply memos.

Real Docker for what the event stream must catch (a container killed behind Motey's
back, a stream that ends); an in-process fake engine for the rules that decide when an
answer may be kept, where the test must place an event exactly inside a lookup.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import zmq

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.communication.protocol.node_requests import RequestKind
from motey.communication.zeromq_client import ZeroMQNodeClient
from motey.communication.zeromq_server import NodeRequestHandler
from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.val.manager import VALManager
from motey.val.plugin import LABEL_NODE_ID, InstanceStatus
from motey.val.plugins.docker_val import DockerVAL
from motey.val.states import InstanceStates
from tests.fakes import FakeEngine
from tests.helpers import TEST_IMAGE, MoteyNode, wait_for

#: The test container: no network, so a full Docker bridge (other work on the shared
#: machine) cannot keep it from starting.
SLEEPER = {"command": "sleep 300", "network_mode": "none"}

# -- a fake engine with an event stream ------------------------------------------------


class _Stream:
    """What a plugin's ``events()`` returns: the test pushes image ids into it."""

    def __init__(self) -> None:
        self.items: queue.Queue[str | None] = queue.Queue()

    def __iter__(self) -> Iterator[str]:
        while True:
            item = self.items.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.items.put(None)


class EventfulEngine(FakeEngine):
    """A fake engine with events; ``status`` can be held to place an event inside it."""

    def __init__(self, settings: dict[str, Any] | None = None, node_id: str = "fake") -> None:
        super().__init__(settings, node_id)
        self.streams: list[_Stream] = []
        self.asked = 0
        self.hold: threading.Event | None = None
        self.inside = threading.Event()
        self.refuse_events = False

    def events(self) -> _Stream:
        if self.refuse_events:
            raise ConnectionError("engine away")
        stream = _Stream()
        self.streams.append(stream)
        return stream

    def status(self, image_id: str) -> InstanceStatus:
        self.asked += 1
        if self.hold is not None:
            self.inside.set()
            assert self.hold.wait(5)
        return super().status(image_id)


@pytest.fixture
def fake() -> Iterator[tuple[EventfulEngine, InstanceStates]]:
    val = VALManager(discover=lambda: {"fake": EventfulEngine}, settings={}, node_id="n")
    val.start()
    engine = val.plugin("fake")
    assert isinstance(engine, EventfulEngine)
    states = InstanceStates(val)
    states.start()
    wait_for(lambda: states.live("fake"), 5, 0.01, "the fake stream connected")
    yield engine, states
    states.stop()


def test_answers_are_kept_and_an_event_drops_them(
    fake: tuple[EventfulEngine, InstanceStates],
) -> None:
    engine, states = fake
    engine.instances["img-1"] = {"id": "c1", "labels": {}, "state": ImageState.RUNNING}
    assert states.status("img-1", "fake").state is ImageState.RUNNING
    assert states.status("img-1", "fake").state is ImageState.RUNNING
    assert engine.asked == 1, "the second answer came from memory"
    engine.instances["img-1"]["state"] = ImageState.ERROR  # it died
    engine.streams[-1].items.put("img-1")
    wait_for(lambda: "img-1" not in states.kept("fake"), 5, 0.01, "the event dropped it")
    assert states.status("img-1", "fake").state is ImageState.ERROR
    assert engine.asked == 2


def test_an_event_during_a_lookup_keeps_its_answer_out(
    fake: tuple[EventfulEngine, InstanceStates],
) -> None:
    """The answer fetched before the change must not be kept after the change's event."""
    engine, states = fake
    engine.instances["img-2"] = {"id": "c2", "labels": {}, "state": ImageState.RUNNING}
    engine.hold = threading.Event()
    answers: list[InstanceStatus] = []
    asking = threading.Thread(target=lambda: answers.append(states.status("img-2", "fake")))
    asking.start()
    assert engine.inside.wait(5)
    engine.streams[-1].items.put("img-2")  # the change happens while the engine answers
    wait_for(lambda: engine.streams[-1].items.empty(), 5, 0.01, "the event was read")
    time.sleep(0.05)  # the watcher applies what it read
    engine.hold.set()
    asking.join(5)
    assert answers and "img-2" not in states.kept("fake")
    engine.hold = None
    states.status("img-2", "fake")
    assert "img-2" in states.kept("fake"), "a quiet lookup is kept again"


def test_nothing_is_kept_while_the_stream_is_down_and_it_comes_back(
    fake: tuple[EventfulEngine, InstanceStates],
) -> None:
    engine, states = fake
    engine.refuse_events = True
    states.reconnect("fake")  # the engine ends the stream (dockerd restarting)
    wait_for(lambda: not states.live("fake"), 5, 0.01, "the stream is seen down")
    for _ in range(3):
        states.status("img-3", "fake")
    assert engine.asked == 3 and not states.kept("fake")
    engine.refuse_events = False
    wait_for(lambda: states.live("fake"), 5, 0.01, "the watcher reconnected by itself")
    states.status("img-3", "fake")
    states.status("img-3", "fake")
    assert engine.asked == 4


def test_a_stream_that_ends_at_once_is_reopened_with_backoff_not_in_a_busy_loop() -> None:
    """An engine that closes every event stream as soon as it is opened (a daemon going
    down) must not be asked again thousands of times a second."""

    class ClosingEngine(EventfulEngine):
        def events(self) -> _Stream:
            stream = super().events()
            stream.close()  # ends before its first event
            return stream

    val = VALManager(discover=lambda: {"fake": ClosingEngine}, settings={}, node_id="n")
    val.start()
    engine = val.plugin("fake")
    assert isinstance(engine, ClosingEngine)
    states = InstanceStates(val)
    states.start()
    try:
        time.sleep(1.0)
        # backoff 0.05, 0.1, 0.2, 0.4 s ...: a handful of streams in a second, not thousands
        assert 2 <= len(engine.streams) <= 8, len(engine.streams)
        assert not states.live("fake")
    finally:
        states.stop()
        val.stop()


def test_container_ids_are_never_kept(fake: tuple[EventfulEngine, InstanceStates]) -> None:
    """An original Motey asks by container id, which no event names: always asked."""
    engine, states = fake
    for _ in range(2):
        states.status("0123456789ab", "fake")
    assert engine.asked == 2


# -- real Docker -----------------------------------------------------------------------


@pytest.fixture
def real(docker_client: docker.DockerClient) -> Iterator[tuple[VALManager, InstanceStates]]:
    node_id = f"test-states-{uuid.uuid4()}"
    val = VALManager(
        discover=lambda: {"docker": DockerVAL},
        settings={"DOCKER": {"stop_timeout": 1, "pull_missing": False}},
        node_id=node_id,
    )
    val.start()
    states = InstanceStates(val)
    states.start()
    try:
        wait_for(lambda: states.live("docker"), 10, 0.02, "the Docker event stream connected")
        yield val, states
    finally:
        states.stop()
        val.stop()
        for c in docker_client.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_ID}={node_id}"}
        ):
            c.remove(force=True)


def _run(val: VALManager) -> tuple[Image, str]:
    image = Image(id=str(uuid.uuid4()), name=TEST_IMAGE, parameters=SLEEPER)
    return image, val.instantiate(image)


def test_a_container_killed_behind_motey_shows_at_once(
    real: tuple[VALManager, InstanceStates], docker_client: docker.DockerClient
) -> None:
    val, states = real
    image, container_id = _run(val)
    wait_for(
        lambda: (
            states.status(image.id, "docker").state is ImageState.RUNNING
            and image.id in states.kept("docker")
        ),
        10,
        0.02,
        "the running state is kept",
    )
    docker_client.containers.get(container_id).kill()
    began = time.monotonic()
    status = wait_for(
        lambda: (s := states.status(image.id, "docker")).state is not ImageState.RUNNING and s,
        3,
        0.01,
        "the kill shows in the status",
    )
    assert status.state is ImageState.ERROR and "137" in status.message, status
    assert time.monotonic() - began < 2.0


def test_the_watcher_survives_a_stream_end_and_stops_in_time(
    real: tuple[VALManager, InstanceStates], docker_client: docker.DockerClient
) -> None:
    val, states = real
    states.reconnect("docker")  # the stream ends from the other side, as on a dockerd restart
    wait_for(lambda: states.live("docker"), 10, 0.02, "the watcher reconnected")
    image, container_id = _run(val)
    wait_for(lambda: image.id in states.kept("docker") or states.status(image.id, "docker"), 10)
    states.status(image.id, "docker")
    docker_client.containers.get(container_id).kill()
    wait_for(
        lambda: states.status(image.id, "docker").state is ImageState.ERROR,
        3,
        0.01,
        "a kill after the reconnection shows",
    )
    began = time.monotonic()
    states.stop()
    assert time.monotonic() - began < InstanceStates.STOP_WAIT
    assert not [t for t in threading.enumerate() if t.name == "motey-states-docker"]


def test_node_status_answer_shows_a_killed_container(
    node_factory: Any, docker_client: docker.DockerClient
) -> None:
    """Through a real node's replier: RUNNING (from memory), then killed → not RUNNING."""
    node: MoteyNode = node_factory(extra={"SECURITY": {"mode": "open"}})
    context = zmq.Context()
    client = ZeroMQNodeClient(context, request_timeout=5)
    client.start()
    try:
        peer = Node(ip=node.ip, id=node.node_id, version="test")
        image = Image(id=str(uuid.uuid4()), name=TEST_IMAGE, parameters=SLEEPER)
        container_id = client.deploy_image(peer, image)
        for _ in range(3):
            assert client.image_status(peer, image).state is ImageState.RUNNING
        docker_client.containers.get(container_id).kill()
        status = wait_for(
            lambda: (s := client.image_status(peer, image)).state is not ImageState.RUNNING and s,
            3,
            0.02,
            "the node's status answer shows the kill",
        )
        assert status.state is ImageState.ERROR and status.instance_id == container_id
    finally:
        client.stop()
        context.destroy(linger=0)


# -- the capability reply memo -----------------------------------------------------------


@pytest.fixture
def executor(
    executor_parts: tuple[ImageExecutor, CapabilityEngine, NodeIdentity],
) -> tuple[ImageExecutor, CapabilityEngine, NodeIdentity]:
    return executor_parts


def test_capability_reply_kept_until_the_capabilities_or_lifecycle_change(
    executor: tuple[ImageExecutor, CapabilityEngine, NodeIdentity],
) -> None:
    image_executor, engine, identity = executor
    answer = NodeRequestHandler(image_executor).handler(RequestKind.CAPABILITIES)
    first = answer(b'{"version": 2}')
    assert answer(b'{"version": 2}') is first, "an unchanged node answers the kept bytes"
    names = {c["capability"] for c in json.loads(first)["capabilities"]}
    assert "camera" not in names
    engine.add([{"capability": "camera", "capability_type": "device"}], "rest")
    changed = json.loads(answer(b'{"version": 2}'))
    assert "camera" in {c["capability"] for c in changed["capabilities"]}
    original = json.loads(answer(b""))  # the original's list form, kept apart
    assert isinstance(original, list) and "camera" in {c["capability"] for c in original}
    identity.set_lifecycle(NodeLifecycle.RECOVER)
    assert json.loads(answer(b'{"version": 2}'))["lifecycle"] == "RECOVER"


def test_malformed_requests_are_refused_every_time(
    executor: tuple[ImageExecutor, CapabilityEngine, NodeIdentity],
) -> None:
    """Memos keep only what decoded: the same bad request gets its error again."""
    answer = NodeRequestHandler(executor[0]).handler(RequestKind.STATUS)
    for _ in range(2):
        reply = json.loads(answer(b'{"version": 2, "id": "../etc"}'))
        assert reply["error"] == "ValidationError", reply


def test_own_deploy_and_terminate_are_seen_before_their_events(
    fake: tuple[EventfulEngine, InstanceStates], tmp_path: Path
) -> None:
    """Read your writes: no answer kept from before this node's own start or removal."""
    engine, states = fake
    database = Database(tmp_path / "capabilities.json").open()
    capabilities = CapabilityEngine(CapabilityRepository(database))
    identity = NodeIdentity(str(uuid.uuid4()), "unit", "127.0.0.1", {})
    identity.set_lifecycle(NodeLifecycle.OPERATE)
    executor = ImageExecutor(identity, states._val, capabilities, states=states)
    image = Image(id=str(uuid.uuid4()), name="busybox", engine="fake")
    try:
        assert executor.status(image).exists is False
        assert image.id in states.kept("fake")
        executor.deploy(image)  # no event is pushed: the fake stream stays silent
        assert executor.status(image).state is ImageState.RUNNING
        executor.terminate(image)
        assert executor.status(image).exists is False
    finally:
        database.close()
