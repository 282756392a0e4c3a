"""MQTTDiscovery in-process against a real Mosquitto, with a real TinyDB node repository."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import logbook
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from motey.communication.mqtt_discovery import MQTTDiscovery
from motey.communication.protocol import discovery as proto
from motey.models.node import DEFAULT_PORTS, Node, NodeLifecycle, NodeReachability
from motey.node.identity import NodeIdentity
from motey.repositories.node_repository import NodeRepository
from tests.cluster_helpers import RawMQTT, retained_on
from tests.helpers import Mosquitto, wait_for

SELF_IP = "127.0.9.1"


@pytest.fixture
def repository() -> NodeRepository:
    return NodeRepository()


@pytest.fixture
def identity() -> NodeIdentity:
    ident = NodeIdentity(str(uuid.uuid4()), "self-node", SELF_IP, dict(DEFAULT_PORTS))
    ident.set_lifecycle(NodeLifecycle.OPERATE)
    return ident


def describe() -> dict[str, Any]:
    return {"load": 0.5, "capabilities": [{"capability": "zigbee", "capability_type": "hw"}]}


@pytest.fixture
def make_discovery(
    identity: NodeIdentity, repository: NodeRepository, no_thread_leaks: None
) -> Iterator[Any]:
    made: list[MQTTDiscovery] = []

    def make(broker: Mosquitto | None, **kw: Any) -> MQTTDiscovery:
        options: dict[str, Any] = {"keepalive": 2, "reconnect_max_delay": 1}
        options.update(kw)
        discovery = MQTTDiscovery(
            identity,
            repository,
            describe,
            host=broker.ip if broker else "",
            port=broker.port if broker else 1883,
            **options,
        )
        made.append(discovery)
        return discovery

    yield make
    for discovery in made:
        discovery.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain broker: these tests are about the open mode's (original) wire format."""
    broker = Mosquitto(tmp_path / "mosquitto", secure=False).start()
    yield broker
    broker.stop()


@pytest.fixture
def raw(mosquitto: Mosquitto) -> Iterator[RawMQTT]:
    client = RawMQTT(mosquitto.ip, mosquitto.port)
    yield client
    client.close()


def presence(node_id: str, ip: str, **changes: Any) -> bytes:
    node = Node(ip=ip, id=node_id, name=f"peer-{ip}", version="1.0.0")
    body = json.loads(proto.encode_presence(node))
    body.update(changes)
    return json.dumps(body).encode()


def test_join_announces_this_node_and_learns_retained_peers(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    peer_id = str(uuid.uuid4())
    raw.publish(proto.presence_topic(peer_id), presence(peer_id, "127.0.9.2"), retain=True)
    repository.upsert(Node(ip="127.0.9.99"))  # stale entry from an earlier run
    discovery = make_discovery(mosquitto)
    discovery.start()

    peer = repository.get_by_id(peer_id)  # start() returns once the retained list is in
    assert peer is not None
    assert peer.ip == "127.0.9.2" and peer.state is NodeReachability.REACHABLE
    assert peer.last_seen > time.time() - 10
    assert repository.get("127.0.9.99") is None  # relearned, not remembered

    raw.expect(lambda t, p, r: t == proto.TOPIC_REGISTER and p == SELF_IP.encode())
    raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST and p == SELF_IP.encode())
    _, payload, _ = raw.expect(lambda t, p, r: t == proto.presence_topic(discovery_id(discovery)))
    body = json.loads(payload)
    assert body["ip"] == SELF_IP and body["lifecycle"] == "OPERATE" and body["load"] == 0.5
    assert body["ports"] == DEFAULT_PORTS and body["name"] == "self-node"
    assert repository.get(SELF_IP) is None  # a node does not list itself


def discovery_id(discovery: MQTTDiscovery) -> str:
    return discovery._identity.id


def test_bare_ip_register_remove_and_nodes_request(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    make_discovery(mosquitto).start()
    raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST)
    raw.publish(proto.TOPIC_REGISTER, "127.0.9.3")
    node = wait_for(lambda: repository.get("127.0.9.3"), what="bare-IP node")
    assert node.id is None and node.ports == DEFAULT_PORTS
    assert node.state is NodeReachability.REACHABLE and node.lifecycle is NodeLifecycle.OPERATE

    raw.drain()
    raw.publish(proto.TOPIC_NODES_REQUEST, "127.0.9.3")  # what an original node sends
    raw.expect(lambda t, p, r: t == proto.TOPIC_REGISTER and p == SELF_IP.encode())

    raw.publish(proto.TOPIC_REMOVE, "127.0.9.3")
    wait_for(lambda: repository.get("127.0.9.3") is None, what="removal")


def test_malformed_messages_are_ignored_and_a_valid_one_still_works(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    discovery = make_discovery(mosquitto)
    logs = logbook.TestHandler(level="WARNING")
    with logs.applicationbound():
        discovery.start()
        raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST)
        good_id = str(uuid.uuid4())
        junk = [
            (proto.TOPIC_REGISTER, b"not-an-ip"),
            (proto.TOPIC_REGISTER, b"\xff\xfe"),
            (proto.TOPIC_REGISTER, b"1.2.3.4" * 5000),
            (proto.TOPIC_REGISTER, b"0.0.0.0"),
            (proto.TOPIC_REMOVE, b"{}"),
            (proto.TOPIC_NODES_REQUEST, b"hello"),
            (proto.presence_topic(good_id), b"{bad json"),
            (proto.presence_topic(good_id), b'["list"]'),
            (proto.presence_topic(good_id), presence(good_id, "127.0.9.4", ports={"api": "x"})),
            (proto.presence_topic(good_id), presence(good_id, "not-an-ip")),
            (proto.presence_topic(good_id), presence("another-id", "127.0.9.4")),
            (proto.presence_topic(good_id), presence(good_id, "127.0.9.4", lifecycle="NAP")),
            (proto.presence_topic(good_id), b"{" + b" " * 100_000 + b"}"),
            (proto.presence_topic("x" * 100), presence("x" * 100, "127.0.9.4")),
        ]
        for topic, payload in junk:
            raw.publish(topic, payload)
        raw.publish(proto.presence_topic(good_id), presence(good_id, "127.0.9.5"))
        node = wait_for(lambda: repository.get_by_id(good_id), what="valid presence")
        raw.publish(proto.TOPIC_REGISTER, "127.0.9.6")
        wait_for(lambda: repository.get("127.0.9.6"), what="valid register")
    assert node.ip == "127.0.9.5"
    assert {n.ip for n in repository.all()} == {"127.0.9.5", "127.0.9.6"}
    assert discovery.connected
    ignored = [r for r in logs.records if "ignored malformed" in r.message]
    assert len(ignored) == len(junk)


def test_last_will_marks_unreachable_and_presence_brings_back(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    make_discovery(mosquitto).start()
    raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST)  # subscribed by now
    peer_id = str(uuid.uuid4())
    raw.publish(proto.presence_topic(peer_id), presence(peer_id, "127.0.9.7", load=0.1))
    first = wait_for(lambda: repository.get_by_id(peer_id), what="peer")
    will = presence(peer_id, "127.0.9.7", state="UNREACHABLE", lifecycle="PROVISION")
    raw.publish(proto.presence_topic(peer_id), will)
    gone = wait_for(
        lambda: (n := repository.get_by_id(peer_id)) and n.state.value == "UNREACHABLE" and n,
        what="unreachable",
    )
    assert gone.last_seen == first.last_seen  # when it was really last seen
    assert gone.lifecycle is NodeLifecycle.OPERATE  # the will's stale phase is not taken
    raw.publish(proto.presence_topic(peer_id), presence(peer_id, "127.0.9.8"))
    back = wait_for(
        lambda: (n := repository.get_by_id(peer_id)) and n.state.value == "REACHABLE" and n,
        what="reachable",
    )
    assert back.ip == "127.0.9.8"  # it came back on another address
    assert repository.get("127.0.9.7") is None
    raw.publish(proto.presence_topic(peer_id), b"")  # cleared presence: a clean leave
    wait_for(lambda: repository.get_by_id(peer_id) is None, what="left")


def test_clean_stop_says_goodbye(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, identity: NodeIdentity
) -> None:
    discovery = make_discovery(mosquitto)
    discovery.start()
    topic = proto.presence_topic(identity.id)
    raw.expect(lambda t, p, r: t == topic and bool(p))
    assert retained_on(mosquitto.ip, mosquitto.port, topic)
    discovery.stop()
    raw.expect(lambda t, p, r: t == proto.TOPIC_REMOVE and p == SELF_IP.encode())
    raw.expect(lambda t, p, r: t == topic and p == b"")
    assert retained_on(mosquitto.ip, mosquitto.port, topic) == []  # the will was not sent
    discovery.stop()  # idempotent


def test_lifecycle_change_is_republished_and_an_idle_node_publishes_nothing(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, identity: NodeIdentity
) -> None:
    """Liveness is the broker session (the last will): a node whose presence says nothing
    new sends nothing, however short its presence_interval (it was republished every
    interval, N/interval messages per second for every node of the cell)."""
    make_discovery(mosquitto, presence_interval=0.2).start()
    topic = proto.presence_topic(identity.id)
    raw.expect(lambda t, p, r: t == topic)
    identity.set_lifecycle(NodeLifecycle.RECOVER, "test")
    raw.expect(lambda t, p, r: t == topic and json.loads(p)["lifecycle"] == "RECOVER")
    raw.drain()
    time.sleep(1.5)  # seven presence_intervals of steady state
    assert [m for m in raw.messages if m[0] == topic] == []


def test_an_image_count_change_is_republished_at_the_next_check(
    mosquitto: Mosquitto, raw: RawMQTT, identity: NodeIdentity, repository: NodeRepository,
    no_thread_leaks: None,
) -> None:  # fmt: skip
    info: dict[str, Any] = {"load": 0.5, "images": 0, "capabilities": []}
    discovery = MQTTDiscovery(
        identity, repository, lambda: dict(info), mosquitto.ip, mosquitto.port,
        keepalive=2, presence_interval=0.2,
    )  # fmt: skip
    try:
        discovery.start()
        topic = proto.presence_topic(identity.id)
        raw.expect(lambda t, p, r: t == topic and json.loads(p)["images"] == 0)
        info["load"] = 0.9  # a load change alone is not material within LOAD_MIN_GAP
        info["images"] = 3
        raw.expect(lambda t, p, r: t == topic and json.loads(p)["images"] == 3)
        raw.drain()
        time.sleep(0.6)
        assert [m for m in raw.messages if m[0] == topic] == []  # once, not again
    finally:
        discovery.stop()


def test_a_peer_killed_while_the_broker_restarted_is_marked_unreachable_after_reconnect(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    """A peer that crashes while the broker is away leaves no last will; the periodic
    presence and its stale sweep covered that case before. Now a node reconciles after
    each reconnect: who is not heard from within the grace period is unreachable."""
    discovery = make_discovery(mosquitto, reconcile_grace=1.5)
    discovery.start()
    raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST)
    live, dead = str(uuid.uuid4()), str(uuid.uuid4())
    raw.publish(proto.presence_topic(live), presence(live, "127.0.9.20"), retain=True)
    raw.publish(proto.presence_topic(dead), presence(dead, "127.0.9.21"), retain=True)
    raw.publish(proto.TOPIC_REGISTER, "127.0.9.22")  # an original node: never republishes
    wait_for(lambda: len(repository.all()) == 3, what="three peers")
    logs = logbook.TestHandler(level="WARNING")
    with logs.applicationbound():
        mosquitto.stop()  # the dead peer crashes now: no broker to publish its will
        wait_for(lambda: not discovery.connected, timeout=10, what="broker gone")
        mosquitto.start()
        wait_for(lambda: discovery.connected, timeout=10, what="reconnected")
        # the live peer reconnects too and publishes a fresh presence
        raw.expect(lambda t, p, r: t == proto.TOPIC_NODES_REQUEST, timeout=10)
        raw.publish(proto.presence_topic(live), presence(live, "127.0.9.20"), retain=True)
        wait_for(
            lambda: repository.get_by_id(dead).state is NodeReachability.UNREACHABLE,
            timeout=10,
            what="dead peer marked unreachable",
        )
    assert repository.get_by_id(live).state is NodeReachability.REACHABLE
    assert repository.get("127.0.9.22").state is NodeReachability.REACHABLE
    marked = [r.message for r in logs.records if "marked unreachable" in r.message]
    assert len(marked) == 1 and "127.0.9.21" in marked[0]


def test_a_reconnect_with_the_broker_alive_keeps_every_live_peer(
    mosquitto: Mosquitto, raw: RawMQTT, make_discovery: Any, repository: NodeRepository
) -> None:
    """Only this node lost its connection: its peers do not reconnect, so they answer
    the resync request of its first presence after the reconnect, and none is marked."""
    peer_identity = NodeIdentity(str(uuid.uuid4()), "peer", "127.0.9.30", dict(DEFAULT_PORTS))
    peer_identity.set_lifecycle(NodeLifecycle.OPERATE)
    peer = MQTTDiscovery(
        peer_identity, NodeRepository(), describe, mosquitto.ip, mosquitto.port, keepalive=2
    )
    discovery = make_discovery(mosquitto, reconcile_grace=1.5)
    try:
        peer.start()
        discovery.start()
        reconnect_keeps_the_peer(mosquitto, raw, discovery, repository, peer_identity.id)
    finally:
        peer.stop()


def reconnect_keeps_the_peer(
    mosquitto: Mosquitto,
    raw: RawMQTT,
    discovery: MQTTDiscovery,
    repository: NodeRepository,
    peer_id: str,
) -> None:
    wait_for(lambda: repository.get_by_id(peer_id), what="peer known")
    peer_topic = proto.presence_topic(peer_id)
    raw.drain()
    logs = logbook.TestHandler(level="WARNING")
    with logs.applicationbound():
        # a client with the same id takes the session over: the broker drops ours
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=discovery._client_id)
        intruder.connect(mosquitto.ip, mosquitto.port)
        intruder.disconnect()
        wait_for(lambda: discovery.connected, timeout=10, what="reconnected")
        own = proto.presence_topic(discovery_id(discovery))
        raw.expect(lambda t, p, r: t == own and json.loads(p).get("resync") is True, timeout=10)
        raw.expect(lambda t, p, r: t == peer_topic and not r, timeout=10)  # the answer
        time.sleep(2.0)  # past the grace period
    assert repository.get_by_id(peer_id).state is NodeReachability.REACHABLE
    assert not [r for r in logs.records if "marked unreachable" in r.message]


def test_waits_for_the_broker_and_reconnects(
    tmp_path: Path, make_discovery: Any, identity: NodeIdentity
) -> None:
    broker = Mosquitto(tmp_path / "late-broker", secure=False)  # chosen port, not started yet
    discovery = make_discovery(broker)
    try:
        discovery.start()
        time.sleep(1.5)
        assert not discovery.connected
        broker.start()
        wait_for(lambda: discovery.connected, timeout=10, what="connect once the broker is up")
        broker.stop()
        wait_for(lambda: not discovery.connected, timeout=10, what="disconnect")
        broker.start()
        wait_for(lambda: discovery.connected, timeout=10, what="reconnect")
        # the new broker lost every retained message; the node announced itself again
        topic = proto.presence_topic(identity.id)
        assert wait_for(lambda: retained_on(broker.ip, broker.port, topic, wait=0.5))
    finally:
        discovery.stop()
        broker.stop()


def test_no_broker_means_single_node(make_discovery: Any, repository: NodeRepository) -> None:
    repository.upsert(Node(ip="127.0.9.11"))
    discovery = make_discovery(None)
    logs = logbook.TestHandler()
    with logs.applicationbound():
        discovery.start()
    assert not discovery.enabled and not discovery.connected
    assert any("single-node cluster" in r.message for r in logs.records)
    assert repository.all() == []
    discovery.stop()
