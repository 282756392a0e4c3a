"""What an operator sees across a cell: Compose placement, logs of an image on another
node, and the whole cell's services (two real nodes and a real Mosquitto)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import zmq

from motey.communication.zeromq_client import ZeroMQNodeClient
from motey.errors import CommunicationError, ValidationError
from motey.models.image import Image
from motey.models.node import DEFAULT_PORTS, Node
from tests.cluster_helpers import wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, next_loopback, unique_name, wait_for
from tests.test_events import sse


class Cell:
    def __init__(self, broker: Mosquitto, a: MoteyNode, b: MoteyNode) -> None:
        self.broker, self.a, self.b = broker, a, b


@pytest.fixture(scope="module")
def cell(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Cell]:
    """a has a camera, b a zigbee stick."""
    workdir: Path = tmp_path_factory.mktemp("cell")
    broker = Mosquitto(workdir / "mosquitto").start()
    nodes: list[MoteyNode] = []
    try:
        for name, caps in (("a", ["camera"]), ("b", ["zigbee"])):
            node = MoteyNode(
                workdir, name=f"op-{name}", mqtt=(broker.ip, broker.port), capabilities=caps
            )
            nodes.append(node)
            node.start()
        for node in nodes:
            other = next(n.ip for n in nodes if n is not node)
            wait_nodes(
                node,
                lambda seen, o=other: o in seen and seen[o]["lifecycle"] == "OPERATE",
                what=f"{node.name} sees its peer operating",
            )
        yield Cell(broker, *nodes)
    finally:
        for node in nodes:
            node.stop()
            if node.node_id:
                for c in docker_client.containers.list(
                    all=True, filters={"label": f"motey.node_id={node.node_id}"}
                ):
                    c.remove(force=True)
        broker.stop()


def test_compose_services_placed_by_capability_and_by_swarm_constraint(
    cell: Cell, tmp_path: Path
) -> None:
    project = tmp_path / "line-3"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        f"""
services:
  sensor:
    image: {TEST_IMAGE}
    command: ["sh", "-c", "echo sensor-1; echo sensor-2; sleep 600"]
    x-motey-capabilities: [zigbee]
  camera:
    image: {TEST_IMAGE}
    command: ["sleep", "600"]
    environment: {{RESOLUTION: 1080p}}
    deploy:
      placement:
        constraints: ["node.labels.camera == true"]
"""
    )
    result = cell.b.cli(
        "deploy", str(project / "docker-compose.yml"), "--wait", "--timeout", "60", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)
    assert service["service_name"] == "line-3"  # the project folder, as Compose names it
    placed = {
        i["parameters"]["labels"]["com.docker.compose.service"]: i["node"]
        for i in service["images"]
    }
    assert placed == {"sensor": cell.b.ip, "camera": cell.a.ip}
    cell.b.delete(f"/v1/service/{service['id']}")
    cell.b.wait_service_state(service["id"], "TERMINATED")


def test_logs_of_an_image_on_another_node(cell: Cell, docker_client: docker.DockerClient) -> None:
    name = unique_name("remote-logs")
    response = cell.a.post_yaml(
        f"""
        service_name: {name}
        images:
          - name: {TEST_IMAGE}
            parameters:
              command: ["sh", "-c", "echo first; echo second; echo third; sleep 600"]
            capabilities: [zigbee]
        """
    )
    assert response.status_code == 201, response.text
    service = cell.a.wait_service_state(response.json()["id"], "RUNNING")
    image = service["images"][0]
    assert image["node"] == cell.b.ip  # owned by a, running on b
    path = f"/v1/service/{service['id']}/images/{image['id']}/logs"
    wait_for(lambda: "third" in cell.a.get(path).text, timeout=10, what="the lines")
    full = cell.a.get(path)
    assert full.status_code == 200 and full.headers["Content-Type"].startswith("text/plain")
    assert full.text == "first\nsecond\nthird\n"
    assert cell.a.get(f"{path}?tail=1").text == "third\n"
    assert cell.a.get(f"{path}?tail=x").status_code == 400
    assert cell.a.get(path.replace(image["id"], "nope")).status_code == 404
    assert cell.a.get(path.replace(service["id"], "nope")).status_code == 404

    # Followed through the owner: a line printed on b after the stream started arrives.
    with cell.a.get(f"{path}?tail=1&follow=1", stream=True, timeout=30) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines) == "third"
        container = docker_client.containers.list(
            filters={"label": f"motey.image_id={image['id']}"}
        )[0]
        container.exec_run(["sh", "-c", "echo printed-later > /proc/1/fd/1"])
        assert next(lines) == "printed-later"
    cell.a.delete(f"/v1/service/{service['id']}")
    cell.a.wait_service_state(service["id"], "TERMINATED")


def test_cell_scope_names_an_owner_that_stopped(cell: Cell) -> None:
    """Runs last in this module: it stops node b."""
    ids = {}
    for node in (cell.a, cell.b):
        response = node.post_yaml(
            f"""
            service_name: {unique_name(node.name)}
            images:
              - name: {TEST_IMAGE}
                parameters: {{command: [sleep, "600"]}}
            """
        )
        assert response.status_code == 201
        ids[node.name] = response.json()["id"]
        node.wait_service_state(ids[node.name], "RUNNING")
    own = {s["id"] for s in cell.a.get("/v1/service").json()}
    assert ids["op-a"] in own and ids["op-b"] not in own  # the node scope is unchanged

    view = cell.a.get("/v1/service?scope=cell").json()
    owners = {s["id"]: s["owner"]["name"] for s in view["services"] if s["id"] in ids.values()}
    assert owners == {ids["op-a"]: "op-a", ids["op-b"]: "op-b"}
    assert {o["name"]: o["answered"] for o in view["owners"]} == {"op-a": True, "op-b": True}
    cli = cell.a.cli("services", "--cell")
    assert cli.returncode == 0 and "op-b" in cli.stdout and "OWNER" in cli.stdout
    elsewhere = cell.a.cli("service", ids["op-b"])
    assert elsewhere.returncode == 1
    assert f"owned by op-b: use --node http://{cell.b.ip}:5023" in elsewhere.stderr

    with cell.a.get("/v1/events", stream=True, timeout=30) as stream:
        cell.b.stop()
        for kind, data in sse(stream):
            if kind == "node" and data.get("removed") and data["ip"] == cell.b.ip:
                break  # the web client hears of it at once
    assert cell.b.ip not in {n["ip"] for n in cell.a.get("/v1/nodes").json()}
    view = cell.a.get("/v1/service?scope=cell", timeout=20).json()
    silent = [o for o in view["owners"] if not o["answered"]]
    assert [(o["ip"], o["name"]) for o in silent] == [(cell.b.ip, "op-b")]
    assert "did not answer" in silent[0]["message"]
    assert ids["op-b"] not in {s["id"] for s in view["services"]}
    cli = cell.a.cli("services", "--cell")
    assert cli.returncode == 1  # incomplete: said so, with the owner named
    assert f"owner op-b ({cell.b.ip}) did not answer" in cli.stderr
    assert cell.a.get("/v1/service?scope=galaxy").status_code == 400


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_peers_that_do_not_know_the_new_requests(ctx: zmq.Context) -> None:
    """An original peer does not listen on the new ports; another may answer an error."""
    ip = next_loopback()
    replier = ctx.socket(zmq.REP)
    replier.setsockopt(zmq.LINGER, 0)
    replier.bind(f"tcp://{ip}:{DEFAULT_PORTS['services_replier']}")
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            if replier.poll(100):
                replier.recv()
                replier.send(b'{"error": "ValidationError", "message": "unknown request"}')

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    client = ZeroMQNodeClient(ctx, request_timeout=0.5)
    client.start()
    try:
        peer = Node(ip=ip, name="old")
        with pytest.raises(ValidationError, match="old .* answered the services request"):
            client.list_services(peer)
        with pytest.raises(CommunicationError, match="did not answer the image logs request"):
            client.image_logs(peer, Image(id="i-1", name="x"), 10, None)
    finally:
        client.stop()
        stop.set()
        thread.join(5)
        replier.close(linger=0)
