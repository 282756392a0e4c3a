"""Two real nodes and an original (2017) Motey peer on one broker, in both directions.

The peer (:class:`tests.cluster_helpers.OriginalPeer`) speaks exactly the original's
formats as its code sends them: bare-IP MQTT registration, capability rows keyed
``type``, the whole image as JSON for deploy, status and terminate, the container id
as the image's id from then on, and a status replier that dies on its first request.
These nodes talk the original's wire format, so they run in ``open`` mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import zmq

from tests.cluster_helpers import OriginalPeer, wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, next_loopback, unique_name, wait_for

OPEN = {"SECURITY": {"mode": "open"}}
PEER_ROWS = [
    {"capability": "docker", "type": "plugin"},
    {"capability": "legacy_plc", "type": "hardware"},
    {"capability": "test capability", "type": "capabilityevent"},
]
ORIGINAL_IMAGE_KEYS = {"id", "name", "engine", "parameters", "capabilities", "node"}
ACTION_TIMEOUT = 4  # [ZEROMQ] action_timeout: deploy and terminate requests


class Cell:
    def __init__(self, a: MoteyNode, b: MoteyNode, peer: OriginalPeer) -> None:
        self.a, self.b, self.peer = a, b, peer
        self.broker: Mosquitto | None = None
        self.ctx: zmq.Context | None = None


@pytest.fixture(scope="module")
def cell(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cell]:
    """a: no special capability; b: zigbee; the original peer: legacy_plc."""
    workdir: Path = tmp_path_factory.mktemp("original")
    # the original speaks plain MQTT: an open broker
    broker = Mosquitto(workdir / "mosquitto", secure=False).start()
    ctx = zmq.Context()
    nodes: list[MoteyNode] = []
    peer: OriginalPeer | None = None
    try:
        for name, caps in (("a", []), ("b", ["zigbee"])):
            node = MoteyNode(
                workdir,
                name=f"orig-cell-{name}",
                mqtt=(broker.ip, broker.port),
                capabilities=caps,
                extra={**OPEN, "ZEROMQ": {"action_timeout": ACTION_TIMEOUT}},
            )
            nodes.append(node)
            node.start()
        peer = OriginalPeer(ctx, next_loopback(), PEER_ROWS, (broker.ip, broker.port))
        for node in nodes:
            others = {n.ip for n in nodes if n is not node} | {peer.ip}
            wait_nodes(node, lambda seen, o=others: o <= set(seen), what=f"{node.name} sees all")
        wait_for(lambda: {n.ip for n in nodes} <= set(peer.nodes), what="the peer sees both")
        cell = Cell(nodes[0], nodes[1], peer)
        cell.broker, cell.ctx = broker, ctx
        yield cell
    finally:
        if peer is not None:
            peer.leave()
            peer.close()
        for node in nodes:
            node.stop()
        for node in nodes:
            if node.node_id:
                for container in docker_client.containers.list(
                    all=True, filters={"label": f"motey.node_id={node.node_id}"}
                ):
                    container.remove(force=True)
        ctx.destroy(linger=0)
        broker.stop()


def blueprint(*requirements: str, extra_parameters: str = "") -> str:
    images = "".join(
        f"  - name: {TEST_IMAGE}\n    engine: docker\n    parameters:\n"
        f'      command: "sleep 300"\n{extra_parameters}'
        f"    capabilities: [{requirement}]\n"
        for requirement in requirements
    )
    return f"service_name: {unique_name()}\nimages:\n{images}"


def test_placement_status_and_terminate_on_an_original_node(cell: Cell) -> None:
    a, peer = cell.a, cell.peer
    created = a.post_yaml(blueprint("legacy_plc", "test capability"))
    assert created.status_code == 201, created.text
    service_id = created.json()["id"]

    # placement: its capability rows (key "type") are read, and both images go to it
    service = a.wait_service_state(service_id, "RUNNING", timeout=30)
    assert [i["node"] for i in service["images"]] == [peer.ip, peer.ip]
    deploys = peer.requests_to("deploy_image_replier")
    assert len(deploys) == 2 and all(set(d) >= ORIGINAL_IMAGE_KEYS for d in deploys)
    # the images of a service are deployed in parallel: the peer may see them in any order
    assert sorted(d["capabilities"] for d in deploys) == [["legacy_plc"], ["test capability"]]
    instance_ids = [i["instance_id"] for i in service["images"]]
    assert set(instance_ids) == set(peer.deployed)  # the container ids it answered
    assert "invalid capability reply" not in a.log()

    # status: the watcher asks (a deployment takes the node's deploy answer as its start,
    # without a status round trip); the original's status replier dies on the first
    # request, and the images stay as they were (running, state unknown), never failed
    service = wait_for(
        lambda: (
            (s := a.service(service_id))
            and all("state unknown" in i["state_message"] for i in s["images"])
            and s
        ),
        what="the watcher's status request answered as 'state unknown'",
    )
    for image in service["images"]:
        assert image["state"] == "RUNNING"
        assert "state unknown" in image["state_message"], image
    statuses = peer.requests_to("image_status_replier")
    assert len(statuses) == 1  # asked once, then known to be silent
    assert "version" not in statuses[0] and set(statuses[0]) >= ORIGINAL_IMAGE_KEYS
    assert statuses[0]["id"] in instance_ids  # by the id it gave, as the original does
    probes = len(peer.requests_to("capabilities_replier"))
    wait_for(
        lambda: len(peer.requests_to("capabilities_replier")) >= probes + 3,
        what="three more watch rounds (each checks the peer is up)",
    )
    assert a.service(service_id)["state"] == "RUNNING"

    # terminate: the whole image with the container id, which the peer removes
    assert a.delete(f"/v1/service/{service_id}").status_code == 202
    a.wait_service_state(service_id, "TERMINATED")
    terminates = peer.requests_to("image_terminate_replier")
    assert sorted(t["id"] for t in terminates) == sorted(instance_ids)
    assert all("version" not in t and set(t) >= ORIGINAL_IMAGE_KEYS for t in terminates)
    assert peer.deployed == {}


def test_deploy_from_an_original_node_then_status_and_terminate_by_container_id(
    cell: Cell, docker_client: docker.DockerClient
) -> None:
    b, peer = cell.b, cell.peer
    target = peer.find_node(["zigbee"])  # its placement: capability names of each node
    assert target == b.ip
    image: dict[str, Any] = peer.image(
        TEST_IMAGE, {"command": "sleep 300", "detach": True}, ["zigbee"]
    )
    image["node"] = target
    container_id = peer.deploy_image(image)
    assert container_id is not None and re.fullmatch(r"[0-9a-f]{64}", container_id), container_id
    assert image["id"] == container_id  # the original keeps it as the image's id
    container = docker_client.containers.get(container_id)
    assert container.labels["motey.node_id"] == b.node_id
    assert container.labels["motey.owner_id"] == "unknown"  # the original names no owner

    # status and terminate come back with the container id, full or short
    assert peer.request_image_status(image) == "RUNNING"
    assert peer.request_image_status({**image, "id": container_id[:12]}) == "RUNNING"
    assert peer.request_image_status({**image, "id": container_id[:10]}) == "RUNNING"

    # a restart of b does not take the container for an orphan of its own
    b.stop()
    b.start()
    docker_client.containers.get(container_id).reload()
    assert docker_client.containers.get(container_id).status == "running"
    assert peer.request_image_status(image) == "RUNNING"

    assert peer.terminate_image(image) == "true"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_id)
    assert peer.request_image_status(image) == "ERROR"
    assert peer.terminate_image(image) == "false"  # idempotent, nothing orphaned


def test_the_original_sample_blueprint_with_detach(
    cell: Cell, docker_client: docker.DockerClient
) -> None:
    """The original's curl examples upload a blueprint whose image sets ``detach: true``."""
    a = cell.a
    created = a.post_yaml(blueprint("docker", extra_parameters="      detach: true\n"))
    assert created.status_code == 201, created.text
    service = a.wait_service_state(created.json()["id"], "RUNNING")
    container = docker_client.containers.get(service["images"][0]["instance_id"])
    assert container.status == "running"  # detached, as Motey always starts containers
    refused = a.post_yaml(blueprint("docker", extra_parameters='      detach: "yes"\n'))
    assert refused.status_code == 400 and "detach" in refused.json()["message"]
    assert a.delete(f"/v1/service/{service['id']}").status_code == 202
    a.wait_service_state(service["id"], "TERMINATED")


def test_an_original_whose_terminate_replier_dies_is_not_called_terminated(cell: Cell) -> None:
    """As its code reads, the original's terminate replier fails like its status one:
    the container stays, and the service says so instead of claiming TERMINATED."""
    a = cell.a
    assert cell.broker is not None and cell.ctx is not None
    rows = [{"capability": "dying_plc", "type": "hardware"}]
    peer = OriginalPeer(
        cell.ctx, next_loopback(), rows, (cell.broker.ip, cell.broker.port), terminate_dies=True
    )
    try:
        wait_nodes(a, lambda seen: peer.ip in seen, what="second original peer registered")
        created = a.post_yaml(blueprint("dying_plc"))
        assert created.status_code == 201, created.text
        service_id = created.json()["id"]
        running = a.wait_service_state(service_id, "RUNNING", timeout=30)
        assert running["images"][0]["node"] == peer.ip
        assert a.delete(f"/v1/service/{service_id}").status_code == 202

        def failure_recorded() -> bool:
            history = a.service(service_id)["history"]
            return any(
                h["state"] == "ERROR" and "did not answer the terminate" in h["message"]
                for h in history
            )

        wait_for(failure_recorded, timeout=ACTION_TIMEOUT + 20, what="termination failure")
        # the container still runs there, so the service is not called TERMINATED
        assert a.service(service_id)["state"] != "TERMINATED"
        assert set(peer.deployed) == {running["images"][0]["instance_id"]}
    finally:
        peer.leave()
        peer.close()
    wait_nodes(a, lambda seen: peer.ip not in seen, what="second original peer removed")
