"""The node that runs an image decides: a peer's policy refuses what the owner allowed
(and the image goes to the next node whose policy allows it), and a moved image is
granted the device path of the node it moved to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from tests.cluster_helpers import start_zigbee_cell
from tests.helpers import TEST_IMAGE, unique_name, wait_for
from tests.test_device_grants import make_char_device


def start_cell(
    tmp_path: Path, node_factory: Any, mosquitto: Any, dongles: str, c_allows: bool
) -> dict[str, Any]:
    """a allows binds of ``data`` (and c when ``c_allows``); a dongle on each of ``dongles``
    (of b and c, each with its own device folder), detected before this returns."""
    data = tmp_path / "data"
    data.mkdir()
    devices = {name: tmp_path / f"dev-{name}" for name in ("b", "c")}
    for name, folder in devices.items():
        folder.mkdir()
        if name in dongles:
            make_char_device(folder / "ttyUSB0")
    allow = {"POLICY": {"allowed_bind_paths": str(data)}}
    nodes = start_zigbee_cell(
        node_factory,
        (mosquitto.ip, mosquitto.port),
        devices,
        allow,
        c_extra=allow if c_allows else None,
    )
    for name in dongles:
        wait_for(
            lambda n=nodes[name]: any(
                e["capability"] == "zigbee" for e in n.get("/v1/capabilities").json()
            ),
            what=f"{name} to detect its dongle",
        )
    return {"nodes": nodes, "devices": devices, "data": data}


@pytest.fixture
def cell(tmp_path: Path, node_factory: Any, mosquitto: Any) -> dict[str, Any]:
    """a: no dongle, allows binds of ``data``; b: a dongle, default policy; c: neither."""
    return start_cell(tmp_path, node_factory, mosquitto, "b", c_allows=False)


@pytest.fixture
def mixed_cell(tmp_path: Path, node_factory: Any, mosquitto: Any) -> dict[str, Any]:
    """a and c allow binds of ``data``, b does not; b and c both have a dongle."""
    return start_cell(tmp_path, node_factory, mosquitto, "bc", c_allows=True)


def blueprint(extra: str = "") -> str:
    return (
        f"service_name: {unique_name('pol')}\nimages:\n  - name: {TEST_IMAGE}\n"
        f"    parameters:\n      command: sleep 300\n{extra}    capabilities: [zigbee]\n"
    )


def devices_of(client: docker.DockerClient, image_id: str) -> list[str]:
    running = client.containers.list(
        filters={"label": f"motey.image_id={image_id}", "status": "running"}
    )
    return [d["PathOnHost"] for c in running for d in c.attrs["HostConfig"]["Devices"] or []]


def test_peer_refuses_a_bind_its_policy_forbids_though_the_owner_allows_it(
    cell: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    a, b = cell["nodes"]["a"], cell["nodes"]["b"]
    r = a.post_yaml(blueprint(f"      volumes: ['{cell['data']}:/data']\n"))
    assert r.status_code == 201, r.text  # a's own policy allows the bind
    service = a.wait_service_state(r.json()["id"], "ERROR")
    assert "allowed_bind_paths" in service["state_message"], service["state_message"]
    assert "cell-b" in service["state_message"]
    assert not docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={b.node_id}"}
    )
    assert "Traceback" not in b.log()


def test_an_image_a_peers_policy_refuses_goes_to_the_next_peer_that_allows_it(
    mixed_cell: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    """Both b and c have the dongle; only c's policy allows the bind. The first service
    goes to one of them; the second is offered to b first (it runs fewer images) unless
    b already refused the first. Either way b refuses and both run on c."""
    a, b, c = (mixed_cell["nodes"][k] for k in "abc")
    bind = f"      volumes: ['{mixed_cell['data']}:/data']\n"
    services = []
    for _ in range(2):
        r = a.post_yaml(blueprint(bind))
        assert r.status_code == 201, r.text
        services.append(a.wait_service_state(r.json()["id"], "RUNNING", timeout=30))
    assert [s["images"][0]["node"] for s in services] == [c.ip, c.ip]
    refusals = [
        h["message"] for s in services for h in s["history"] if "refused by node" in h["message"]
    ]
    assert refusals and all("cell-b" in m and "allowed_bind_paths" in m for m in refusals)
    assert all(f"placed on {c.ip} instead" in m for m in refusals)
    assert not docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={b.node_id}"}
    )
    assert "Traceback" not in a.log() + b.log()


def test_moved_image_is_granted_the_new_nodes_device(
    cell: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    a, b, c = (cell["nodes"][k] for k in "abc")
    dev_b, dev_c = cell["devices"]["b"], cell["devices"]["c"]
    sid = a.post_yaml(blueprint()).json()["id"]
    service = a.wait_service_state(sid, "RUNNING")
    image_id = service["images"][0]["id"]
    assert service["images"][0]["node"] == b.ip
    assert devices_of(docker_client, image_id) == [str(dev_b / "ttyUSB0")]

    make_char_device(dev_c / "ttyUSB3")
    wait_for(
        lambda: any(e["capability"] == "zigbee" for e in c.get("/v1/capabilities").json()),
        what="c to detect its dongle",
    )
    (dev_b / "ttyUSB0").unlink()  # pulled from b: the image moves to c
    wait_for(
        lambda: devices_of(docker_client, image_id) == [str(dev_c / "ttyUSB3")],
        timeout=30,
        what="the image running on c with c's device",
    )
    assert a.service(sid)["images"][0]["node"] == c.ip
