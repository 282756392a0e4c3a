"""Fixtures that build real things: Motey processes, a Mosquitto broker, Docker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.models.node import NodeLifecycle
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.val.manager import VALManager
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real local Docker engine; the test image must have been built by the setup."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine answers ({exc}); run scripts/setup.sh first")
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"test image {TEST_IMAGE} missing; run scripts/build_test_image.sh")
    yield client
    client.close()


def _remove_node_containers(client: docker.DockerClient, node_ids: list[str]) -> int:
    removed = 0
    for node_id in node_ids:
        for c in client.containers.list(all=True, filters={"label": f"motey.node_id={node_id}"}):
            c.remove(force=True)
            removed += 1
    return removed


@pytest.fixture
def node_factory(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Any]:
    """Start real ``motey run`` processes; all are stopped and their containers removed."""
    nodes: list[MoteyNode] = []

    def make(start: bool = True, **kwargs: Any) -> MoteyNode:
        node = MoteyNode(tmp_path, **kwargs)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    errors = []
    for node in nodes:
        try:
            node.stop()
        except AssertionError as exc:
            errors.append(str(exc))
    _remove_node_containers(docker_client, [n.node_id for n in nodes if n.node_id])
    assert not errors, errors


@pytest.fixture
def node(node_factory: Any) -> MoteyNode:
    """One running node without a broker."""
    return node_factory()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def plain_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker without TLS, as the original Motey's nodes use (open-mode tests)."""
    broker = Mosquitto(tmp_path / "plain-mosquitto", secure=False).start()
    yield broker
    broker.stop()


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves threads running (for in-process component tests)."""
    before = set(threading.enumerate())
    yield
    deadline = threading.Event()
    for _ in range(50):
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        deadline.wait(0.1)
    pytest.fail(f"threads leaked: {[t.name for t in leaked]}")


@pytest.fixture
def executor_parts(
    tmp_path: Path,
) -> Iterator[tuple[ImageExecutor, CapabilityEngine, NodeIdentity]]:
    """An ImageExecutor of real parts (identity, capability engine on TinyDB, a VAL manager
    without plugins), with the engine and identity it answers from."""
    database = Database(tmp_path / "capabilities.json").open()
    engine = CapabilityEngine(CapabilityRepository(database), static_capabilities=["zigbee"])
    engine.start()
    identity = NodeIdentity(str(uuid.uuid4()), "unit", "127.0.0.1", {})
    identity.set_lifecycle(NodeLifecycle.OPERATE)
    val = VALManager(discover=dict, settings={}, node_id=identity.id)
    val.start()
    yield ImageExecutor(identity, val, engine), engine, identity
    val.stop()
    database.close()
