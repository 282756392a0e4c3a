"""The node images, built here without a registry (scripts/build_node_image.sh) and run as
real nodes: Docker socket mounted, host network on the node's own loopback address."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import REPO_ROOT, TEST_IMAGE, MoteyNode, unique_name, wait_for

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_node_image.sh"


def build_image(arch: str) -> None:
    """Build (or, on a machine that has it, only check) the image for ``arch``."""
    result = subprocess.run([str(BUILD_SCRIPT), arch], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


#: The image each architecture's build makes; arm64 runs here under QEMU user emulation.
IMAGES = {"amd64": "motey:latest", "arm64": "motey:rpi"}


@pytest.fixture(scope="module", params=sorted(IMAGES))
def node_image(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> str:
    arch = request.param
    build_image(arch)
    assert docker_client.images.get(IMAGES[arch]).attrs["Architecture"] == arch
    return arch


class ContainerNode(MoteyNode):
    """A node that is the image's container, run with ``docker run`` in the foreground.

    The container reads the image's own /etc/motey/config.ini; only the address, the name
    and a few timings come from MOTEY_* variables, as an operator would set them. Its data
    volume is this node's ``db`` folder, so ``node_id`` works as for any MoteyNode.
    ``docker run`` passes SIGTERM on to the node, so ``stop()`` works unchanged.
    """

    def __init__(self, workdir: Path, arch: str, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.arch = arch
        self.image = IMAGES[arch]
        self.container = f"motey-image-test-{uuid.uuid4().hex[:8]}"

    def start(self, wait: bool = True) -> ContainerNode:
        settings = {
            "NODE_IP": self.ip,
            "NODE_NAME": self.name,
            # A secure node (the default): its credentials folder, issued by the test cell
            # like any MoteyNode's, is mounted read-only as an operator would mount it.
            "SECURITY_CREDENTIALS": "/etc/motey/credentials",
            "DOCKER_STOP_TIMEOUT": "1",
            "ORCHESTRATOR_WATCH_INTERVAL": "0.5",
        }
        command = ["docker", "run", "--rm", "--name", self.container, "--network", "host",
                   "--platform", f"linux/{self.arch}",
                   "-v", "/var/run/docker.sock:/var/run/docker.sock",
                   "-v", f"{self.dir / 'db'}:/var/lib/motey",
                   "-v", f"{self.dir / 'credentials'}:/etc/motey/credentials:ro"]  # fmt: skip
        for key, value in settings.items():
            command += ["-e", f"MOTEY_{key}={value}"]
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, self.image], stdout=out, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready(timeout=60 if self.arch == "amd64" else 180)
        return self


@pytest.fixture
def image_node(
    node_image: str, tmp_path: Path, docker_client: docker.DockerClient
) -> Iterator[ContainerNode]:
    node = ContainerNode(tmp_path, node_image)  # node_image is the architecture
    yield node
    try:
        node.stop()
    finally:
        subprocess.run(["docker", "rm", "-f", node.container], capture_output=True, check=False)
        if node.node_id:
            label = f"motey.node_id={node.node_id}"
            for c in docker_client.containers.list(all=True, filters={"label": label}):
                c.remove(force=True)


# On a fresh machine the fixture builds the base images first (debootstrap; for arm64
# under emulation, about ten minutes); pytest-timeout counts fixture setup too.
@pytest.mark.timeout(1800)
def test_image_runs_a_node_that_deploys_a_blueprint(
    image_node: ContainerNode, docker_client: docker.DockerClient
) -> None:
    image_node.start()
    page = image_node.get("/")
    assert page.status_code == 200  # the web client, package data of the installed wheel
    assert page.content == (REPO_ROOT / "webclient" / "index.html").read_bytes()
    facts = {c["capability"]: c.get("value") for c in image_node.get("/v1/capabilities").json()}
    assert facts["arch"] == image_node.arch  # arm64: the node really runs emulated

    blueprint = (
        f"service_name: {unique_name('image')}\nimages:\n"
        f"  - name: {TEST_IMAGE}\n    engine: docker\n"
        f'    parameters:\n      command: "sleep 300"\n'
    )
    created = image_node.post_yaml(blueprint)
    assert created.status_code == 201, created.text
    service_id = created.json()["id"]
    service = image_node.wait_service_state(service_id, "RUNNING", timeout=90)
    assert service["images"][0]["node"] == image_node.ip

    label = f"motey.service_id={service_id}"
    (container,) = docker_client.containers.list(filters={"label": label})
    assert container.status == "running"
    assert container.labels["motey.node_id"] == image_node.node_id

    assert image_node.delete(f"/v1/service/{service_id}").status_code in (200, 202, 204)
    wait_for(
        lambda: not docker_client.containers.list(filters={"label": label}),
        timeout=60,
        what="the service's container to stop",
    )
    assert image_node.stop() == 0
