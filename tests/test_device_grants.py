"""Device grants: an image that requires a device-rule capability gets exactly the
matching device nodes, checked from inside its container on the real Docker engine."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import TEST_IMAGE, MoteyNode, unique_name


def make_char_device(path: Path) -> None:
    """A device node like /dev/null (major 1, minor 3) under a temporary folder."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def blueprint(requirement: str | None) -> str:
    caps = f"    capabilities: [{requirement}]\n" if requirement else ""
    return (
        f"service_name: {unique_name('dev')}\nimages:\n  - name: {TEST_IMAGE}\n"
        f"    parameters: {{command: sleep 300}}\n{caps}"
    )


def container_of(client: docker.DockerClient, service: dict[str, Any]) -> Any:
    image_id = service["images"][0]["id"]
    (container,) = client.containers.list(filters={"label": f"motey.image_id={image_id}"})
    return container


def run_in(container: Any, *cmd: str) -> int:
    return int(container.exec_run(list(cmd)).exit_code)


@pytest.fixture
def dev_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dev"
    folder.mkdir()
    make_char_device(folder / "ttyUSB0")
    (folder / "ttyUSB9").write_text("a plain file a glob also matches")
    return folder


def test_required_device_capability_grants_matching_devices_only(
    node_factory: Any, dev_dir: Path, docker_client: docker.DockerClient
) -> None:
    node: MoteyNode = node_factory(
        extra={"NODE": {"device_rules": f"{dev_dir}/ttyUSB*=zigbee, {dev_dir}/video*=camera"}}
    )
    caps = {c["capability"]: c for c in node.get("/v1/capabilities").json()}
    assert caps["zigbee"]["source"] == "device"

    r = node.post_yaml(blueprint("zigbee"))
    assert r.status_code == 201, r.text
    service = node.wait_service_state(r.json()["id"], "RUNNING")
    assert "devices" not in service["images"][0]["parameters"], "no host path is stored"
    container = container_of(docker_client, service)
    device = str(dev_dir / "ttyUSB0")
    assert run_in(container, "test", "-c", device) == 0, "the device node is in the container"
    assert run_in(container, "sh", "-c", f"echo hello > {device}") == 0, "and usable"
    assert run_in(container, "test", "-e", str(dev_dir / "ttyUSB9")) != 0, "not a device"
    host_config = container.attrs["HostConfig"]
    assert host_config["Privileged"] is False
    assert [d["PathOnHost"] for d in host_config["Devices"]] == [device]

    # An image that does not require the capability gets no device at all.
    plain = node.post_yaml(blueprint(None))
    other = container_of(docker_client, node.wait_service_state(plain.json()["id"], "RUNNING"))
    assert run_in(other, "test", "-e", device) != 0
    assert not other.attrs["HostConfig"]["Devices"]
