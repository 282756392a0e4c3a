"""Capability placement across three real nodes and a silent fake node.

One cluster serves the whole module (starting three processes per test would dominate
the run time); tests that change a node's phase put it back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import zmq

from tests.cluster_helpers import RawMQTT, SilentNode, wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, next_loopback, unique_name, wait_for

PLACEMENT_TIMEOUT = 2  # [ORCHESTRATOR] placement_timeout and [ZEROMQ] request_timeout


class Cluster:
    def __init__(self, broker: Mosquitto, a: MoteyNode, b: MoteyNode, c: MoteyNode) -> None:
        self.broker = broker
        self.a, self.b, self.c = a, b, c

    @property
    def mqtt(self) -> tuple[str, int]:
        return (self.broker.ip, self.broker.port)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cluster]:
    """a: no special capability; b: zigbee; c: camera, all on one broker (a secure cell)."""
    yield from _cluster(tmp_path_factory.mktemp("cluster"), docker_client, secure=True)


@pytest.fixture(scope="module")
def open_cluster(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cluster]:
    """The same three nodes in open mode on a plain broker: the original's wire formats."""
    yield from _cluster(tmp_path_factory.mktemp("open-cluster"), docker_client, secure=False)


def _cluster(workdir: Path, docker_client: docker.DockerClient, secure: bool) -> Iterator[Cluster]:
    broker = Mosquitto(workdir / "mosquitto", secure=secure).start()
    extra = {} if secure else {"SECURITY": {"mode": "open"}}
    nodes: list[MoteyNode] = []
    try:
        for name, caps in (("a", []), ("b", ["zigbee"]), ("c", ["camera"])):
            node = MoteyNode(
                workdir, name=f"cell-{name}", mqtt=(broker.ip, broker.port), extra=extra
            )
            node.sections["NODE"]["capabilities"] = ",".join(caps)
            if name == "a":  # fail fast: an image no node can run waits 1 s, then ERROR
                node.sections["ORCHESTRATOR"]["placement_deadline"] = "1"
            node.write_config()
            nodes.append(node)
            node.start()
        for node in nodes:
            others = {n.ip for n in nodes if n is not node}
            wait_nodes(
                node,
                lambda seen, o=others: (
                    o <= set(seen) and all(seen[ip]["lifecycle"] == "OPERATE" for ip in o)
                ),
                what=f"{node.name} sees all operating",
            )
        yield Cluster(broker, *nodes)
    finally:
        for node in nodes:
            node.stop()
        for node in nodes:
            if node.node_id:
                for container in docker_client.containers.list(
                    all=True, filters={"label": f"motey.node_id={node.node_id}"}
                ):
                    container.remove(force=True)
        broker.stop()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def image(capabilities: list[str] | None = None, command: str = "sleep 300") -> str:
    caps = f"    capabilities: [{', '.join(capabilities)}]\n" if capabilities else ""
    return (
        f"  - name: {TEST_IMAGE}\n    engine: docker\n    parameters:\n"
        f'      command: "{command}"\n{caps}'
    )


def deploy(node: MoteyNode, *images: str) -> str:
    response = node.post_yaml(f"service_name: {unique_name()}\nimages:\n{''.join(images)}")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def containers_of(client: docker.DockerClient, service_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"motey.service_id={service_id}"})


def terminate(node: MoteyNode, service_id: str) -> None:
    assert node.delete(f"/v1/service/{service_id}").status_code == 202
    node.wait_service_state(service_id, "TERMINATED")


def test_local_first(cluster: Cluster, docker_client: docker.DockerClient) -> None:
    service_id = deploy(cluster.b, image(["zigbee"]))
    service = cluster.b.wait_service_state(service_id, "RUNNING")
    assert service["images"][0]["node"] == cluster.b.ip
    terminate(cluster.b, service_id)
    assert containers_of(docker_client, service_id) == []


def test_remote_placement_status_and_terminate(
    cluster: Cluster, docker_client: docker.DockerClient
) -> None:
    a, b, c = cluster.a, cluster.b, cluster.c
    service_id = deploy(a, image(["zigbee"]), image(["camera"]), image())
    service = a.wait_service_state(service_id, "RUNNING")
    assert [i["node"] for i in service["images"]] == [b.ip, c.ip, a.ip]

    containers = {x.labels["motey.image_id"]: x for x in containers_of(docker_client, service_id)}
    assert len(containers) == 3
    zigbee_image = service["images"][0]
    on_b = containers[zigbee_image["id"]]
    assert on_b.labels["motey.node_id"] == b.node_id  # b started it and owns the instance
    assert on_b.labels["motey.owner_id"] == a.node_id  # a owns the service
    assert service_id not in {s["id"] for s in b.get("/v1/service").json()}  # a owns it

    # remote status: the image dies on b, a sees it through b's status replier
    on_b.kill()
    failed = a.wait_service_state(service_id, "ERROR", timeout=15)
    assert "exited" in failed["images"][0]["state_message"]
    assert failed["images"][1]["state"] == "RUNNING"

    # remote terminate: deleting on a removes the instances on b and c
    terminate(a, service_id)
    wait_for(lambda: containers_of(docker_client, service_id) == [], what="instances removed")


def test_impossible_placement_leaves_nothing_running(
    cluster: Cluster, docker_client: docker.DockerClient
) -> None:
    service_id = deploy(cluster.a, image(), image(["zigbee", "camera"]))
    service = cluster.a.wait_service_state(service_id, "ERROR", timeout=20)
    message = service["state_message"]
    assert "camera" in message and "zigbee" in message, message
    assert "no node meets" in message
    assert service["images"][0]["state"] == "TERMINATED"  # rolled back
    assert containers_of(docker_client, service_id) == []


def test_node_outside_operate_is_skipped(
    cluster: Cluster, docker_client: docker.DockerClient
) -> None:
    a, b = cluster.a, cluster.b
    assert b.put_json("/v1/node", {"lifecycle": "RECOVER", "reason": "maintenance"}).ok
    try:
        wait_nodes(a, lambda seen: seen[b.ip]["lifecycle"] == "RECOVER", what="a sees recover")
        service_id = deploy(a, image(["zigbee"]))
        service = a.wait_service_state(service_id, "ERROR", timeout=20)
        assert "zigbee" in service["state_message"]
        assert containers_of(docker_client, service_id) == []
    finally:
        assert b.put_json("/v1/node", {"lifecycle": "OPERATE"}).ok
    wait_nodes(a, lambda seen: seen[b.ip]["lifecycle"] == "OPERATE", what="a sees operate")
    service_id = deploy(a, image(["zigbee"]))
    assert a.wait_service_state(service_id, "RUNNING")["images"][0]["node"] == b.ip
    terminate(a, service_id)


def test_a_silent_node_never_hangs_a_deployment(
    open_cluster: Cluster, ctx: zmq.Context, docker_client: docker.DockerClient
) -> None:
    cluster = open_cluster  # a bare-IP registration: only an open node accepts one
    a, b = cluster.a, cluster.b
    silent = SilentNode(ctx, next_loopback(), cluster.mqtt)
    try:
        wait_nodes(a, lambda seen: silent.ip in seen, what="silent node registered")
        started = time.monotonic()
        service_id = deploy(a, image(["zigbee"]))
        service = a.wait_service_state(service_id, "RUNNING", timeout=20)
        assert service["images"][0]["node"] == b.ip
        assert time.monotonic() - started < PLACEMENT_TIMEOUT + 8
        assert silent.received() >= 1  # it was asked, and the wait for it was bounded

        started = time.monotonic()
        impossible = deploy(a, image(["nfc"]))
        failed = a.wait_service_state(impossible, "ERROR", timeout=20)
        assert "nfc" in failed["state_message"]
        assert time.monotonic() - started < PLACEMENT_TIMEOUT + 8
        terminate(a, service_id)
        assert a.get("/v1/nodes").status_code == 200
    finally:
        silent.mqtt.publish("motey/v1/remove", silent.ip)
        silent.close()
    wait_nodes(a, lambda seen: silent.ip not in seen, what="silent node removed")


def test_malformed_discovery_messages_leave_real_nodes_working(open_cluster: Cluster) -> None:
    cluster = open_cluster  # open mode: a secure broker would not even deliver these
    a = cluster.a
    raw = RawMQTT(*cluster.mqtt, topics=("motey/v1/none",))
    try:
        for topic, payload in (
            ("motey/v1/register", b"999.1.2.3"),
            ("motey/v1/register", b"\xff" * 70_000),
            ("motey/v1/remove", b"not an ip"),
            ("motey/v1/nodes_request", b""),
            ("motey/v1/nodes/" + "f" * 36, b"{broken"),
            ("motey/v1/nodes/" + "f" * 36, b'{"format": 1, "id": 5}'),
        ):
            raw.publish(topic, payload)
        newcomer = next_loopback()
        raw.publish("motey/v1/register", newcomer)
        seen = wait_nodes(a, lambda seen: newcomer in seen, what="valid register after junk")
        assert {cluster.b.ip, cluster.c.ip} <= set(seen)
        assert len(seen) == 3  # no entry from the junk
        raw.publish("motey/v1/remove", newcomer)
        wait_nodes(a, lambda seen: newcomer not in seen, what="newcomer removed")
    finally:
        raw.close()
    service_id = deploy(a, image(["camera"]))
    assert a.wait_service_state(service_id, "RUNNING")["images"][0]["node"] == cluster.c.ip
    terminate(a, service_id)
