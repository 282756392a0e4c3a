"""What a 100-node cell needs, in-process: placement spreads, reads come from memory,
discovery answers a join with O(1) work, and stop wakes its threads (issue 12).

Speed is the benchmark's business (performance_test/cluster_benchmark.py); these tests
keep the behaviour the speed comes from.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import zmq

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.communication.api.listing import ListingCache, Page, parse_page
from motey.communication.mqtt_discovery import MQTTDiscovery
from motey.communication.protocol import discovery as proto
from motey.communication.zeromq_server import NodeRequestHandler, ZeroMQServer
from motey.errors import StorageError, ValidationError
from motey.models.node import DEFAULT_PORTS, Node, NodeLifecycle, NodeReachability
from motey.models.service import Service
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.placement import Reservations
from motey.repositories.base import AtomicJSONStorage, Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository
from motey.schemas.validation import compiled, validate
from motey.val.manager import VALManager
from tests.cluster_helpers import RawMQTT
from tests.fakes import FakePeer, blueprint, build, wait_state
from tests.helpers import Mosquitto, next_loopback, wait_for
from tests.test_mqtt_discovery import SELF_IP, describe, presence
from tests.test_zeromq_server import ports


# -- placement ---------------------------------------------------------------------------
def placed_on(rig: Any) -> Counter[str]:
    return Counter(
        image.node
        for service in rig.orchestrator.list_services()
        for image in service.images
        if image.node
    )


def test_a_service_of_four_goes_to_four_peers_with_equal_load(tmp_path: Path) -> None:
    """Before: every image of a burst went to the lowest address (one node got 20)."""
    rig = build(tmp_path)  # the local node lacks ``cam``
    try:
        peers = [rig.add_peer(FakePeer(f"127.9.1.{i}", capabilities=["cam"])) for i in (1, 2, 3, 4)]
        image = {"name": "busybox", "capabilities": ["cam"]}
        service = rig.orchestrator.submit_blueprint(blueprint(image, image, image, image))
        wait_state(rig, service.id, "RUNNING")
        # all four are placed before any deploys: only the reservations tell them apart
        assert sorted(placed_on(rig).values()) == [1, 1, 1, 1], placed_on(rig)
        for _ in range(4):
            single = rig.orchestrator.submit_blueprint(blueprint(image))
            wait_state(rig, single.id, "RUNNING")
        # one at a time, nothing in flight: equal peers take turns
        assert sorted(placed_on(rig).values()) == [2, 2, 2, 2], placed_on(rig)
        assert set(placed_on(rig)) == {p.ip for p in peers}
    finally:
        rig.close()


def test_peers_whose_presence_lacks_the_capability_are_not_asked(tmp_path: Path) -> None:
    rig = build(tmp_path)
    try:
        others = [rig.add_peer(FakePeer(f"127.9.2.{i}", capabilities=["zigbee"])) for i in range(8)]
        cam = rig.add_peer(FakePeer("127.9.2.100", capabilities=["cam"]))
        service = rig.orchestrator.submit_blueprint(
            blueprint({"name": "busybox", "capabilities": ["cam"]})
        )
        wait_state(rig, service.id, "RUNNING")
        assert placed_on(rig) == {cam.ip: 1}
        assert [p.requests for p in others] == [0] * 8, "presence already said they lack cam"
    finally:
        rig.close()


def test_reservations_count_until_released_or_expired() -> None:
    now = [0.0]
    held = Reservations(ttl=10, clock=lambda: now[0])
    held.hold("a")
    held.hold("a")
    assert held.count("a") == 2 and held.count("b") == 0
    held.release("a")
    assert held.count("a") == 1
    now[0] = 11.0  # a deployment that never reported back stops counting
    assert held.count("a") == 0


# -- repositories ------------------------------------------------------------------------
def test_the_node_list_lives_in_memory_and_a_refresh_is_no_event() -> None:
    """Before: every presence rewrote and fsynced all of nodes.json (a node no longer has
    that file: tests/test_restart_recovery.py)."""
    nodes = NodeRepository()
    events: list[dict[str, Any]] = []
    nodes.subscribe(events.append)
    for i in range(100):
        nodes.upsert(Node(ip=f"127.0.5.{i}", id=f"n{i}", version="1"))
    assert len(events) == 100
    assert nodes.touch("127.0.5.7", 123.0, 0.5, 3)
    assert len(events) == 100, "a periodic presence is no event"
    node = nodes.get_by_id("n7")
    assert node is not None and node.last_seen == 123.0 and node.images == 3
    nodes.upsert(Node(ip="127.0.6.7", id="n7", version="1"))  # same node, new address
    nodes.remove("127.0.5.7")
    moved = nodes.get_by_id("n7")
    assert moved is not None and moved.ip == "127.0.6.7"


def test_services_are_read_from_memory_and_survive_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(tmp_path / "services.json").open()
    repo = ServiceRepository(database)
    service = Service(id=str(uuid.uuid4()), service_name="svc")
    repo.add(service)
    generation = repo.generation

    def no_reads(_self: AtomicJSONStorage) -> None:
        raise AssertionError("a read went to the storage")

    monkeypatch.setattr(AtomicJSONStorage, "read", no_reads)
    assert repo.get(service.id) is not None
    assert [s.id for s in repo.all()] == [service.id]
    assert [s.id for s in repo.find_by_name("svc")] == [service.id]
    copy = repo.get(service.id)
    assert copy is not None
    copy.service_name = "changed"  # a caller's copy is not the stored record
    assert repo.get(service.id).service_name == "svc"  # type: ignore[union-attr]
    monkeypatch.undo()
    assert repo.generation == generation
    repo.remove(service.id)
    assert repo.generation == generation + 1
    repo.add(Service(id=str(uuid.uuid4()), service_name="kept"))
    database.close()

    reopened = ServiceRepository(Database(tmp_path / "services.json").open())
    assert [s.service_name for s in reopened.all()] == ["kept"]


def test_a_failed_write_changes_neither_file_nor_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ServiceRepository(Database(tmp_path / "services.json").open())
    repo.add(Service(id=str(uuid.uuid4()), service_name="first"))

    def full_disk(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("motey.repositories.base.os.fsync", full_disk)
    with pytest.raises(StorageError):
        repo.add(Service(id=str(uuid.uuid4()), service_name="second"))
    monkeypatch.undo()
    assert [s.service_name for s in repo.all()] == ["first"]


# -- list responses and validators ---------------------------------------------------------
def test_a_listing_is_rendered_once_per_change() -> None:
    generation = [0]
    renders: list[int] = []
    cache = ListingCache(lambda: generation[0])

    def render() -> list[int]:
        renders.append(generation[0])
        return [generation[0]]

    assert cache.body("k", render) == b"[0]"
    assert cache.body("k", render) == b"[0]"
    generation[0] = 1
    assert cache.body("k", render) == b"[1]"
    assert renders == [0, 1]


def test_pages_and_fields_are_checked_and_applied() -> None:
    page = parse_page({"offset": "1", "limit": "2", "fields": "id,state"})
    entries = [{"id": i, "state": "RUNNING", "images": []} for i in range(5)]
    assert page.apply(entries) == [{"id": 1, "state": "RUNNING"}, {"id": 2, "state": "RUNNING"}]
    assert parse_page({}) == Page()
    for bad in ({"limit": "-1"}, {"offset": "x"}, {"limit": "100000"}, {"fields": ",,"}):
        with pytest.raises(ValidationError):
            parse_page(bad)


def test_a_validator_is_compiled_once_per_schema() -> None:
    schema = {"type": "object", "required": ["a"]}
    assert compiled(schema) is compiled(schema)
    validate({"a": 1}, schema, "thing")
    with pytest.raises(ValidationError, match="thing: a"):
        validate({}, schema, "thing")


# -- discovery -------------------------------------------------------------------------------
@pytest.fixture
def plain_broker(tmp_path: Path) -> Any:
    broker = Mosquitto(tmp_path / "mosquitto", secure=False).start()
    yield broker
    broker.stop()


def test_a_joining_presence_node_gets_no_re_announcements(
    plain_broker: Mosquitto, no_thread_leaks: None
) -> None:
    """Before: every node re-announced itself on every nodes_request (2N+2 per join)."""
    identity = NodeIdentity(str(uuid.uuid4()), "self-node", SELF_IP, dict(DEFAULT_PORTS))
    identity.set_lifecycle(NodeLifecycle.OPERATE)
    repository = NodeRepository()
    discovery = MQTTDiscovery(
        identity, repository, describe, host=plain_broker.ip, port=plain_broker.port, keepalive=2
    )
    discovery.start()
    raw = RawMQTT(plain_broker.ip, plain_broker.port)
    try:
        joiner = str(uuid.uuid4())
        raw.publish(proto.presence_topic(joiner), presence(joiner, "127.0.9.40"), retain=True)
        wait_for(lambda: repository.get_by_id(joiner), what="the joiner's presence")
        raw.drain()
        raw.publish(proto.TOPIC_NODES_REQUEST, "127.0.9.40")
        raw.publish(proto.TOPIC_NODES_REQUEST, "127.0.9.41")  # an original node asks
        raw.expect(lambda t, p, r: t == proto.TOPIC_REGISTER and p == SELF_IP.encode())
        # The answer to the joiner would have come first (one connection, in order).
        answers = [
            (t, p)
            for t, p, _r in list(raw.messages)
            if t == proto.TOPIC_REGISTER or t.startswith(proto.TOPIC_PRESENCE_PREFIX)
        ]
        assert answers == [(proto.TOPIC_REGISTER, SELF_IP.encode())], answers
    finally:
        raw.close()
        discovery.stop()


# -- shutdown -------------------------------------------------------------------------------
def test_stop_wakes_the_repliers_instead_of_waiting_for_a_poll(
    tmp_path: Path, no_thread_leaks: None
) -> None:
    """With a 30 s poll interval the loops could only see the stop flag after 30 s."""
    context = zmq.Context()
    database = Database(tmp_path / "capabilities.json").open()
    identity = NodeIdentity(str(uuid.uuid4()), "unit", "127.0.0.1", {})
    val = VALManager(discover=dict, settings={}, node_id=identity.id)
    engine = CapabilityEngine(CapabilityRepository(database), static_capabilities=[])
    executor = ImageExecutor(identity, val, engine)
    ip = next_loopback()
    server = ZeroMQServer(context, NodeRequestHandler(executor), ip, ports(ip), poll_interval=30)
    try:
        server.start()
        server.stop()
        assert server.drained, "a replier was still waiting when stop gave up"
    finally:
        database.close()
        context.destroy(linger=0)


def test_discovery_json_is_unchanged_by_the_images_count() -> None:
    node = Node(ip="127.0.9.50", id=str(uuid.uuid4()), version="1", images=4)
    body = json.loads(proto.encode_presence(node))
    assert body["images"] == 4
    decoded = proto.decode_presence(proto.presence_topic(node.id or ""), json.dumps(body).encode())
    assert decoded is not None and decoded.images == 4
    assert decoded.state is NodeReachability.REACHABLE


def test_a_repeated_presence_skips_the_schema_but_not_the_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = Node(ip="127.0.9.51", id=str(uuid.uuid4()), version="1", load=0.5, images=1)
    topic, payload = proto.presence_topic(node.id or ""), proto.encode_presence(node)
    seen: dict[str, dict[str, Any]] = {}
    assert proto.decode_presence(topic, payload, seen) is not None
    checks: list[str] = []
    monkeypatch.setattr(proto, "validate", lambda *a, **k: checks.append("schema"))
    body = json.loads(payload)
    body.update(load=0.9, images=2, timestamp=body["timestamp"] + 10)
    again = proto.decode_presence(topic, json.dumps(body).encode(), seen)
    assert again is not None and again.load == 0.9 and again.images == 2
    assert checks == [], "what was validated before is not validated again"
    monkeypatch.undo()
    for change in ({"load": -1}, {"images": True}, {"timestamp": "x"}, {"name": 5}):
        with pytest.raises(ValidationError):
            proto.decode_presence(topic, json.dumps(body | change).encode(), seen)
    with pytest.raises(ValidationError):  # not an object: no memo applies
        proto.decode_presence(topic, b'["list"]', {})
