"""Placement follows the hardware: the thesis' ZigBee scenario on a real three-node cluster.

The dongle is simulated by a file that a device rule (``<dir>/ttyUSB*=zigbee``) watches:
unplugging it is deleting the file, plugging it into another node is creating the file
in that node's folder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.cluster_helpers import start_zigbee_cell, wait_nodes
from tests.helpers import TEST_IMAGE, unique_name, wait_for

BLUEPRINT = f"""\
service_name: {{name}}
images:
  - name: {TEST_IMAGE}
    parameters: {{{{command: "sleep 600"}}}}
    capabilities: [zigbee]
  - name: {TEST_IMAGE}
    parameters: {{{{command: "sleep 601"}}}}
"""


class CopyCounter:
    """Samples the running containers of one service all the time a test runs."""

    def __init__(self, client: docker.DockerClient, service_id: str) -> None:
        self._client = client
        self._filters = {"label": f"motey.service_id={service_id}", "status": "running"}
        self._stop = threading.Event()
        self.max_zigbee_copies = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            running = self._client.containers.list(filters=self._filters)
            zigbee = [c for c in running if "600" in " ".join(c.attrs["Config"]["Cmd"] or [])]
            self.max_zigbee_copies = max(self.max_zigbee_copies, len(zigbee))

    def __enter__(self) -> CopyCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def zigbee_node(service: dict[str, Any]) -> str | None:
    return service["images"][0]["node"]


def settled_on(node: Any, sid: str, ip: str) -> bool:
    """The service runs with its first image on ``ip`` and the move is recorded."""
    service = node.service(sid)
    image = service["images"][0]
    return (
        service["state"] == "RUNNING"
        and image["node"] == ip
        and image["state"] == "RUNNING"
        and ip in service["history"][-1]["message"] + service["history"][-2]["message"]
    )


@pytest.fixture
def cell(tmp_path: Path, node_factory: Any, mosquitto: Any) -> Iterator[dict[str, Any]]:
    """Nodes a (no dongle rule), b and c (each watching its own device folder)."""
    mqtt = (mosquitto.ip, mosquitto.port)
    devices = {name: tmp_path / f"dev-{name}" for name in ("b", "c")}
    for folder in devices.values():
        folder.mkdir()
    (devices["b"] / "ttyUSB0").write_text("dongle")
    nodes = start_zigbee_cell(node_factory, mqtt, devices)
    yield {"nodes": nodes, "devices": devices}


def test_dongle_unplugged_and_plugged_into_another_node(cell, docker_client) -> None:
    a, b, c = (cell["nodes"][k] for k in "abc")
    dev_b, dev_c = cell["devices"]["b"], cell["devices"]["c"]

    sid = a.post_yaml(BLUEPRINT.format(name=unique_name("zigbee"))).json()["id"]
    service = a.wait_service_state(sid, "RUNNING")
    assert zigbee_node(service) == b.ip, "the image needing zigbee runs where the dongle is"
    assert service["images"][1]["node"] == a.ip

    with CopyCounter(docker_client, sid) as copies:
        # Unplug: no node has a dongle now. The image stops and waits; the service says why.
        (dev_b / "ttyUSB0").unlink()
        service = a.wait_service_state(sid, "ERROR", timeout=20)
        image = service["images"][0]
        assert image["awaiting_placement"] is True and image["node"] is None
        assert "zigbee" in service["state_message"]
        wait_for(
            lambda: (
                not docker_client.containers.list(
                    filters={"label": f"motey.image_id={image['id']}", "status": "running"}
                )
            ),
            what="the copy on b to stop",
        )
        assert service["images"][1]["state"] == "RUNNING", "the other image keeps running"

        # Plug it into c: the image is placed there automatically.
        (dev_c / "ttyUSB0").write_text("dongle")
        wait_for(lambda: settled_on(a, sid, c.ip), timeout=20, what="the image restored on c")

        # Move it straight from c to b: plug into b, unplug from c.
        (dev_b / "ttyUSB1").write_text("dongle")
        wait_for(
            lambda: any(e["capability"] == "zigbee" for e in b.get("/v1/capabilities").json()),
            what="b to detect its dongle",
        )
        (dev_c / "ttyUSB0").unlink()
        wait_for(lambda: settled_on(a, sid, b.ip), timeout=20, what="the image moved to b")
    assert copies.max_zigbee_copies == 1, "never two copies of the image at once"

    history = [h["message"] for h in a.service(sid)["history"]]
    assert any("no longer meets zigbee" in m for m in history), history
    assert any("is waiting" in m for m in history), history
    assert any(f"placed on {c.ip}" in m for m in history), history
    assert any(f"moved from {c.ip} to {b.ip}" in m for m in history), history
    running = docker_client.containers.list(
        filters={"label": f"motey.service_id={sid}", "status": "running"}
    )
    assert len(running) == 2

    # Deleting the service removes the image wherever it ended up.
    a.delete(f"/v1/service/{sid}")
    a.wait_service_state(sid, "TERMINATED")
    assert (
        docker_client.containers.list(all=True, filters={"label": f"motey.service_id={sid}"}) == []
    )


def test_local_capability_removal_moves_image_to_a_peer(cell, docker_client) -> None:
    a, b = cell["nodes"]["a"], cell["nodes"]["b"]
    # a gets a "plc" capability over REST; b has it too. The image starts on a (local first).
    for node in (a, b):
        assert node.put_json("/v1/capabilities", [{"capability": "plc", "capability_type": "hw"}])
    wait_nodes(
        a,
        lambda seen: any(
            c["capability"] == "plc" for c in seen.get(b.ip, {}).get("capabilities", [])
        ),
        what="a to learn b's plc",
    )
    text = (
        f"service_name: {unique_name('plc')}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 600"}\n    capabilities: [plc]\n'
    )
    sid = a.post_yaml(text).json()["id"]
    assert zigbee_node(a.wait_service_state(sid, "RUNNING")) == a.ip
    a.delete("/v1/capabilities", json=[{"capability": "plc", "capability_type": "hw"}])
    wait_for(lambda: settled_on(a, sid, b.ip), timeout=20, what="the image moved from a to b")
    running = docker_client.containers.list(
        filters={"label": f"motey.service_id={sid}", "status": "running"}
    )
    assert [c.labels["motey.node_id"] for c in running] == [b.node_id]
