"""A node restarted (also after ``kill -9``) finds its services and containers again."""

from __future__ import annotations

import time
import uuid

from motey.models.image import Image, ImageState
from motey.models.service import Service, ServiceState
from motey.repositories.base import Database
from motey.repositories.service_repository import ServiceRepository
from tests.helpers import TEST_IMAGE, MoteyNode, unique_name, wait_for

BLUEPRINT = """\
service_name: {name}
images:
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 300"}}
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 301"}}
"""


def node_containers(docker_client, node: MoteyNode) -> list:
    return docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={node.node_id}"}
    )


def test_kill_9_restart_keeps_services_without_duplicates(node: MoteyNode, docker_client) -> None:
    running = node.post_yaml(BLUEPRINT.format(name=unique_name())).json()["id"]
    doomed = node.post_yaml(BLUEPRINT.format(name=unique_name())).json()["id"]
    node.wait_service_state(running, "RUNNING")
    node.wait_service_state(doomed, "RUNNING")
    node.delete(f"/v1/service/{doomed}")
    node.wait_service_state(doomed, "TERMINATED")
    before = {c.id for c in node_containers(docker_client, node)}
    assert len(before) == 2

    node.kill()
    # While the node is down: one of its containers dies, and a stray container that
    # claims to be this node's (e.g. left from a service whose record is gone) appears.
    survivor_ids = sorted(before)
    stray = docker_client.containers.run(
        TEST_IMAGE,
        "sleep 300",
        detach=True,
        labels={
            "motey.node_id": node.node_id,
            "motey.owner_id": node.node_id,
            "motey.service_id": str(uuid.uuid4()),
            "motey.image_id": str(uuid.uuid4()),
        },
    )
    foreign = docker_client.containers.run(
        TEST_IMAGE,
        "sleep 300",
        detach=True,
        labels={
            "motey.node_id": node.node_id,
            "motey.owner_id": str(uuid.uuid4()),  # deployed here by another node: not ours
            "motey.service_id": str(uuid.uuid4()),
            "motey.image_id": str(uuid.uuid4()),
        },
    )

    node.start()
    wait_for(
        lambda: stray.id not in {c.id for c in node_containers(docker_client, node)},
        what="the orphaned container to be removed",
    )
    service = node.wait_service_state(running, "RUNNING")
    assert [i["state"] for i in service["images"]] == ["RUNNING", "RUNNING"]
    after = {c.id for c in node_containers(docker_client, node)}
    assert after == set(survivor_ids) | {foreign.id}, "no duplicates, no restarts, orphan gone"
    assert node.service(doomed)["state"] == "TERMINATED"
    foreign.remove(force=True)
    # what a restart needs is on disk; the node list (soft state) never is
    stored = {p.name for p in (node.dir / "db").iterdir()}
    assert {"services.json", "capabilities.json"} <= stored and "nodes.json" not in stored


def test_container_lost_while_node_was_down_shows_error(node: MoteyNode, docker_client) -> None:
    sid = node.post_yaml(BLUEPRINT.format(name=unique_name())).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    assert node.stop() == 0
    node_containers(docker_client, node)[0].remove(force=True)
    node.start()
    service = node.wait_service_state(sid, "ERROR")
    assert "not found" in service["state_message"]


def test_interrupted_deployment_resumes_without_duplicate(node_factory, docker_client) -> None:
    node = node_factory()
    node_id = node.node_id
    assert node.stop() == 0
    # The state a crash mid-deployment leaves: the record says INSTANTIATING, the first
    # image's container already runs, the second image never started.
    service_id, first_id, second_id = (str(uuid.uuid4()) for _ in range(3))
    started = docker_client.containers.run(
        TEST_IMAGE,
        "sleep 300",
        detach=True,
        labels={
            "motey.node_id": node_id,
            "motey.owner_id": node_id,
            "motey.service_id": service_id,
            "motey.image_id": first_id,
        },
    )
    now = time.time()
    images = [
        Image(
            id=first_id,
            name=TEST_IMAGE,
            parameters={"command": "sleep 300"},
            node=node.ip,
            node_id=node_id,
            state=ImageState.INSTANTIATING,
            service_id=service_id,
            owner_id=node_id,
        ),
        Image(
            id=second_id,
            name=TEST_IMAGE,
            parameters={"command": "sleep 301"},
            service_id=service_id,
            owner_id=node_id,
        ),
    ]
    db = Database(node.dir / "db" / "services.json").open()
    ServiceRepository(db).add(
        Service(
            id=service_id,
            service_name="interrupted",
            images=images,
            state=ServiceState.INSTANTIATING,
            created_at=now,
            updated_at=now,
        )
    )
    db.close()

    node.start()
    service = node.wait_service_state(service_id, "RUNNING")
    assert [i["state"] for i in service["images"]] == ["RUNNING", "RUNNING"]
    containers = docker_client.containers.list(
        all=True, filters={"label": f"motey.service_id={service_id}"}
    )
    assert len(containers) == 2
    assert started.id in {c.id for c in containers}


def test_clean_stop_is_quick_and_leaves_containers_running(node: MoteyNode, docker_client) -> None:
    sid = node.post_yaml(BLUEPRINT.format(name=unique_name())).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    started = time.monotonic()
    assert node.stop() == 0
    assert time.monotonic() - started < 10
    assert all(c.status == "running" for c in node_containers(docker_client, node))
    assert "stop requested" in node.log()
