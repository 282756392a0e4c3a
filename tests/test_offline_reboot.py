"""Offline reboot (issue 10, point 8): a node restarts while the broker and its peers
are away; it comes up, keeps its own services and the images it runs for others, serves
its API, and rejoins when the cell returns. KubeEdge and Nomad have open bugs here."""

from __future__ import annotations

from typing import Any

from tests.cluster_helpers import wait_nodes
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, unique_name


def blueprint(capabilities: list[str] | None = None) -> str:
    caps = f"    capabilities: [{', '.join(capabilities)}]\n" if capabilities else ""
    return (
        f"service_name: {unique_name('reboot')}\nimages:\n  - name: {TEST_IMAGE}\n"
        f'    parameters: {{command: "sleep 300"}}\n{caps}'
    )


def running(docker_client: Any, node: MoteyNode) -> set[str]:
    return {
        c.id
        for c in docker_client.containers.list(filters={"label": f"motey.node_id={node.node_id}"})
    }


def test_node_reboots_alone_and_rejoins(
    mosquitto: Mosquitto, node_factory: Any, docker_client: Any
) -> None:
    mqtt = (mosquitto.ip, mosquitto.port)
    owner = node_factory(name="reboot-owner", mqtt=mqtt)
    lonely = node_factory(name="reboot-lonely", mqtt=mqtt, capabilities=["camera"])
    wait_nodes(
        owner,
        lambda seen: lonely.ip in seen and seen[lonely.ip]["lifecycle"] == "OPERATE",
        what="the owner to see the camera node operating",
    )
    # One image the lonely node runs for the owner, one service of its own.
    foreign = owner.post_yaml(blueprint(["camera"])).json()["id"]
    own = lonely.post_yaml(blueprint()).json()["id"]
    assert owner.wait_service_state(foreign, "RUNNING")["images"][0]["node"] == lonely.ip
    lonely.wait_service_state(own, "RUNNING")
    before = running(docker_client, lonely)
    assert len(before) == 2

    # The cell goes away: the broker and the peer. Then the node reboots alone.
    mosquitto.stop()
    assert owner.stop() == 0
    assert lonely.stop() == 0
    lonely.start()
    assert lonely.get("/v1/node").json()["lifecycle"] == "OPERATE"
    assert lonely.service(own)["state"] == "RUNNING"
    assert running(docker_client, lonely) == before, "its own and the owner's image survive"
    late = lonely.post_yaml(blueprint()).json()["id"]  # it still deploys on its own
    lonely.wait_service_state(late, "RUNNING")

    # The cell returns: both see each other again and nothing was lost or doubled.
    mosquitto.start()
    owner.start()
    wait_nodes(
        owner,
        lambda seen: lonely.ip in seen and seen[lonely.ip]["state"] == "REACHABLE",
        timeout=45,
        what="the owner to see the rebooted node again",
    )
    wait_nodes(lonely, lambda seen: owner.ip in seen, timeout=45, what="it to see the owner")
    service = owner.wait_service_state(foreign, "RUNNING")
    assert service["images"][0]["node"] == lonely.ip
    assert lonely.service(own)["state"] == "RUNNING"
    assert before <= running(docker_client, lonely)
    assert len(running(docker_client, lonely)) == 3
