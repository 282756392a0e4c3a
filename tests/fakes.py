"""First-class fakes for in-process orchestrator tests (the model: Nomad's drivers/mock).

* :class:`FakeEngine` — a VAL plugin that "runs" images in memory, with a start and stop
  delay, images that fail, and a count of how many calls run at once.
* :class:`FakeRemote` — the orchestrator's ``RemoteNodeClient`` for a set of
  :class:`FakePeer` nodes, each with its own engine, capabilities, delay and silence;
  :meth:`FakeRemote.cancel` ends requests in flight like the ZeroMQ client's does.
* :func:`build` — a real orchestrator (real repositories on a temp folder, real
  placement, gateway and executor) around those fakes.

Everything runs in milliseconds; real processes stay for what crosses a process boundary.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.errors import (
    CommunicationError,
    ImageUnavailable,
    NodeNotOperational,
    PeerSilent,
    PolicyError,
)
from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle, NodeReachability
from motey.node.identity import NodeIdentity
from motey.orchestrator.cluster import ClusterGateway, PeerHealth
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.inter_node_orchestrator import InterNodeOrchestrator
from motey.orchestrator.placement import Placement
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository
from motey.val.manager import VALManager
from motey.val.plugin import LABEL_IMAGE_ID, InstanceInfo, InstanceStatus, VALPlugin


class FakeEngine(VALPlugin):
    """An engine that keeps instances in a dict; delays and failures are settable."""

    name = "fake"

    def __init__(self, settings: dict[str, Any] | None = None, node_id: str = "fake") -> None:
        super().__init__(settings or {}, node_id)
        self.instances: dict[str, dict[str, Any]] = {}
        self.start_delay = 0.0
        self.stop_delay = 0.0
        self.fail_start: set[str] = set()  # image names whose start fails
        self.missing: set[str] = set()  # image names the engine cannot get
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0  # most calls that ran at the same moment

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1

    def capabilities(self) -> list[dict[str, Any]]:
        return [{"capability": "fake", "capability_type": "engine"}]

    def validate_parameters(self, parameters: dict[str, Any], field: str) -> None:
        return None

    def ensure_image(self, name: str) -> None:
        if name in self.missing:
            raise ImageUnavailable(f"image {name!r} not found")

    def instantiate(self, image: Image, labels: dict[str, str]) -> str:
        self._enter()
        try:
            time.sleep(self.start_delay)
            if image.name in self.missing:  # like an engine: no pull here (ensure_image)
                raise ImageUnavailable(f"image {image.name!r} not found")
            if image.name in self.fail_start:
                from motey.errors import EngineError

                raise EngineError(f"image {image.name!r} failed to start")
            with self._lock:
                known = self.instances.get(image.id)
                if known is None:
                    known = self.instances[image.id] = {
                        "id": uuid.uuid4().hex,
                        "labels": dict(labels),
                        "state": ImageState.RUNNING,
                    }
                return str(known["id"])
        finally:
            self._leave()

    def status(self, image_id: str) -> InstanceStatus:
        with self._lock:
            known = self.instances.get(image_id)
        if known is None:
            return InstanceStatus(ImageState.TERMINATED, "no instance", exists=False)
        return InstanceStatus(known["state"], "", instance_id=known["id"])

    def terminate(self, image_id: str) -> bool:
        self._enter()
        try:
            time.sleep(self.stop_delay)
            with self._lock:
                return self.instances.pop(image_id, None) is not None
        finally:
            self._leave()

    def list_instances(self) -> list[InstanceInfo]:
        with self._lock:
            return [
                InstanceInfo(v["id"], dict(v["labels"]), v["state"])
                for v in self.instances.values()
            ]

    def running(self) -> set[str]:
        """Image ids with an instance."""
        with self._lock:
            return set(self.instances)


@dataclass
class FakePeer:
    """A remote node as the fake client sees it."""

    ip: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    name: str = ""
    capabilities: list[str] = field(default_factory=list)
    lifecycle: str = "OPERATE"
    load: float = 0.1
    delay: float = 0.0  # seconds every request takes
    silent: bool = False  # never answers (the request ends at the client's timeout)
    bare_ip: bool = False  # known by a bare-IP register only (no presence)
    engine: FakeEngine = field(default_factory=FakeEngine)
    requests: int = 0
    #: What this peer answers as an owner to a claims request: (asker, ids) -> (keep, stop)
    claims: Any = None
    #: Its ``[POLICY]`` refuses every image with this key (as a peer's deploy reply does)
    refuses: str | None = None
    #: It leaves OPERATE when a deployment arrives (after answering the placement survey)
    leaves_on_deploy: bool = False

    def as_node(self) -> Node:
        return Node(
            ip=self.ip,
            id=None if self.bare_ip else self.id,
            name=self.name or self.ip,
            version=None if self.bare_ip else "test",
            state=NodeReachability.REACHABLE,
            lifecycle=NodeLifecycle(self.lifecycle),
            capabilities=[
                {"capability": c, "capability_type": "hardware"} for c in self.capabilities
            ],
        )


class FakeRemote:
    """``RemoteNodeClient`` over in-memory peers; a request honours the peer's delay."""

    def __init__(self, timeout: float = 1.0) -> None:
        self.peers: dict[str, FakePeer] = {}
        self.timeout = timeout
        self._cancel = threading.Event()

    def add(self, peer: FakePeer) -> FakePeer:
        self.peers[peer.ip] = peer
        return peer

    def start(self) -> None:
        self._cancel.clear()

    def cancel(self) -> None:
        self._cancel.set()

    def _call(self, node: Node) -> FakePeer:
        if self._cancel.is_set():
            raise CommunicationError("node client is stopped")
        peer = self.peers.get(node.ip)
        if peer is None:
            raise PeerSilent(f"node {node.ip} did not answer (unknown)")
        peer.requests += 1
        # Like the ZeroMQ client: a request gives up after the timeout, or ends at a cancel.
        late = peer.silent or peer.delay > self.timeout
        if self._cancel.wait(self.timeout if late else peer.delay):
            raise CommunicationError("node client stopped during the request")
        if late:
            raise PeerSilent(f"node {node.ip} did not answer within {self.timeout:g} s")
        return peer

    def describe(self, node: Node) -> dict[str, Any]:
        peer = self._call(node)
        return {
            "node_id": peer.id,
            "name": peer.name or peer.ip,
            "lifecycle": peer.lifecycle,
            "load": peer.load,
            "capabilities": [
                {"capability": c, "capability_type": "hardware"} for c in peer.capabilities
            ],
        }

    def deploy_image(self, node: Node, image: Image) -> str:
        peer = self._call(node)
        if peer.leaves_on_deploy:
            peer.lifecycle = "DECOMMISSION"
        if peer.lifecycle != "OPERATE":
            raise NodeNotOperational(f"node {peer.ip} is in {peer.lifecycle}")
        if peer.refuses:
            raise PolicyError(
                f"image.parameters: refused by the blueprint policy of node {peer.ip} "
                f"([POLICY] {peer.refuses})",
                field="image.parameters",
            )
        return peer.engine.instantiate(image, {LABEL_IMAGE_ID: image.id})

    def image_status(self, node: Node, image: Image) -> InstanceStatus:
        return self._call(node).engine.status(image.id)

    def terminate_image(self, node: Node, image: Image) -> bool:
        return self._call(node).engine.terminate(image.id)

    def claims(self, node: Node, own_id: str, image_ids: list[str]) -> dict[str, list[str]]:
        peer = self._call(node)
        if peer.claims is None:
            raise CommunicationError(f"node {node.ip} answers no image claims")
        keep, stop = peer.claims(own_id, image_ids)
        return {"keep": keep, "stop": stop}


@dataclass
class Rig:
    """An in-process orchestrator with its fakes."""

    orchestrator: InterNodeOrchestrator
    engine: FakeEngine
    remote: FakeRemote
    identity: NodeIdentity
    nodes: NodeRepository
    capabilities: CapabilityEngine
    databases: list[Database]
    placement: Placement

    def add_peer(self, peer: FakePeer) -> FakePeer:
        self.remote.add(peer)
        self.nodes.upsert(peer.as_node())
        return peer

    def close(self) -> None:
        self.orchestrator.stop()
        for db in self.databases:
            db.close()


def blueprint(*images: dict[str, Any], name: str = "svc") -> str:
    """A YAML blueprint of fake-engine images (JSON is YAML)."""
    import json

    entries = [{"engine": "fake", **image} for image in images]
    return json.dumps({"service_name": name, "images": entries})


def build(
    tmp_path: Path,
    *,
    capabilities: list[str] | None = None,
    workers: int = 4,
    placement_timeout: float = 1.0,
    placement_deadline: float | None = None,
    request_timeout: float = 1.0,
    peer_max_failures: int = 3,
    peer_grace: float = 30.0,
    start: bool = True,
    **orchestrator_options: Any,
) -> Rig:
    """A running orchestrator on a fake engine, its node in OPERATE."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    databases = [Database(tmp_path / f"{name}.json").open() for name in ("services", "caps")]
    services = ServiceRepository(databases[0])
    nodes = NodeRepository()
    identity = NodeIdentity(uuid.uuid4().hex, "local", "127.0.0.1", {})
    val = VALManager(lambda: {"fake": FakeEngine}, settings={}, node_id=identity.id)
    val.start()
    engine = val.plugin("fake")
    assert isinstance(engine, FakeEngine)
    caps = CapabilityEngine(CapabilityRepository(databases[1]), capabilities or [])
    executor = ImageExecutor(identity, val, caps)
    remote = FakeRemote(timeout=request_timeout)
    health = PeerHealth(nodes, max_failures=peer_max_failures, grace=peer_grace)
    gateway = ClusterGateway(identity, executor, nodes, remote, health)
    placement = Placement(gateway, timeout=placement_timeout)
    orchestrator = InterNodeOrchestrator(
        services,
        executor,
        gateway,
        placement,
        identity,
        watch_interval=3600,  # tests run rounds themselves with watch_once()
        workers=workers,
        placement_deadline=placement_deadline,
        subscribe_capabilities=caps.subscribe,
        **orchestrator_options,
    )
    rig = Rig(orchestrator, engine, remote, identity, nodes, caps, databases, placement)
    if start:
        orchestrator.start()
        identity.set_lifecycle(NodeLifecycle.OPERATE)
    return rig


def wait_state(rig: Rig, service_id: str, state: str, timeout: float = 5.0) -> Any:
    """Poll the stored service until it is in ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = rig.orchestrator.get_service(service_id)
        if service.state.value == state:
            return service
        time.sleep(0.01)
    service = rig.orchestrator.get_service(service_id)
    raise AssertionError(f"service is {service.state.value} ({service.state_message}), not {state}")
