"""A node that runs a peer's image crashes and returns: the owner's view follows."""

from __future__ import annotations

from typing import Any

from tests.cluster_helpers import wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, unique_name


def test_owner_sees_a_crashed_node_and_its_return(
    mosquitto: Mosquitto, node_factory: Any, docker_client: Any
) -> None:
    mqtt = (mosquitto.ip, mosquitto.port)
    a = node_factory(name="fail-a", mqtt=mqtt)
    b = node_factory(name="fail-b", mqtt=mqtt, capabilities=["lidar"])
    wait_nodes(
        a,
        lambda seen: b.ip in seen and seen[b.ip]["lifecycle"] == "OPERATE",
        what="a to see b operating",
    )
    text = (
        f"service_name: {unique_name('lidar')}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 600"}\n    capabilities: [lidar]\n'
    )
    sid = a.post_yaml(text).json()["id"]
    assert a.wait_service_state(sid, "RUNNING")["images"][0]["node"] == b.ip
    (container,) = docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})

    b.kill()  # the container keeps running; only the node process is gone
    service = a.wait_service_state(sid, "ERROR", timeout=30)
    assert "unreachable" in service["state_message"] and b.ip in service["state_message"]

    b.start()
    service = a.wait_service_state(sid, "RUNNING", timeout=30)
    assert service["images"][0]["node"] == b.ip
    running = docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})
    assert [c.id for c in running] == [container.id], "same container, no duplicate"

    a.delete(f"/v1/service/{sid}")
    a.wait_service_state(sid, "TERMINATED")
    assert (
        docker_client.containers.list(all=True, filters={"label": f"motey.service_id={sid}"}) == []
    )


def test_container_restarted_by_docker_brings_service_back(
    node_factory: Any, docker_client
) -> None:
    node = node_factory()
    text = (
        f"service_name: {unique_name()}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 600"}\n'
    )
    sid = node.post_yaml(text).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    (container,) = docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})
    container.kill()
    node.wait_service_state(sid, "ERROR")
    container.start()  # an operator (or a restart policy) brings it back
    assert node.wait_service_state(sid, "RUNNING")["state_message"] == "all images running"
