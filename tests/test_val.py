"""VAL plugin discovery from a real plugin folder, and the Docker plugin on the real engine."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from motey.errors import ImageUnavailable, UnprocessableError, ValidationError
from motey.models.image import Image, ImageState
from motey.val.loader import discover_plugins
from motey.val.manager import VALManager
from motey.val.plugins.docker_val import DockerVAL
from tests.helpers import TEST_IMAGE, wait_for

FAKE_PLUGIN = '''
from motey.models.image import ImageState
from motey.val.plugin import InstanceStatus, VALPlugin


class EchoVAL(VALPlugin):
    """An engine that runs nothing; enough to prove discovery works."""

    name = "echo"

    def capabilities(self):
        return [{"capability": "echo", "capability_type": "engine"}]

    def validate_parameters(self, parameters, field):
        pass

    def ensure_image(self, name):
        pass

    def instantiate(self, image, labels):
        return "echo-" + image.id

    def status(self, image_id):
        return InstanceStatus(ImageState.RUNNING)

    def terminate(self, image_id):
        return True

    def list_instances(self):
        return []
'''


def test_plugins_found_by_info_files_and_entry_points(tmp_path: Path) -> None:
    (tmp_path / "echo_val.py").write_text(FAKE_PLUGIN)
    (tmp_path / "echo.yapsy-plugin").write_text("[Core]\nName = echo\nModule = echo_val\n")
    (tmp_path / "broken.yapsy-plugin").write_text("[Core]\nName = broken\nModule = missing\n")
    (tmp_path / "syntax_val.py").write_text("def oops(:\n")
    (tmp_path / "syntax.yapsy-plugin").write_text("[Core]\nName = syntax\nModule = syntax_val\n")
    (tmp_path / "garbage.yapsy-plugin").write_text("this is not an info file")

    found = discover_plugins([str(tmp_path)])
    assert found["docker"] is DockerVAL  # built-in info file (and entry point)
    assert found["echo"].__name__ == "EchoVAL"
    assert "broken" not in found and "syntax" not in found

    manager = VALManager(lambda: {"echo": found["echo"]}, settings={}, node_id="n1")
    manager.start()
    image = Image(id="i1", name="anything", engine="echo")
    assert manager.instantiate(image) == "echo-i1"
    assert manager.capabilities() == [{"capability": "echo", "capability_type": "engine"}]
    with pytest.raises(UnprocessableError, match="unknown engine 'docker'"):
        manager.plugin("docker")
    manager.stop()


@pytest.fixture
def docker_val(docker_client):
    plugin = DockerVAL({"url": "unix://var/run/docker.sock", "stop_timeout": 1}, "test-node")
    plugin.node_id = f"test-node-{uuid.uuid4().hex[:8]}"
    plugin.start()
    yield plugin
    for info in plugin.list_instances():
        plugin.terminate(info.image_id or "")
    plugin.stop()


def labels(plugin: DockerVAL, image: Image) -> dict[str, str]:
    return {
        "motey.node_id": plugin.node_id,
        "motey.owner_id": plugin.node_id,
        "motey.service_id": "s",
        "motey.image_id": image.id,
    }


def test_docker_lifecycle_is_idempotent(docker_val: DockerVAL, docker_client) -> None:
    image = Image(id=str(uuid.uuid4()), name=TEST_IMAGE, parameters={"command": "sleep 300"})
    first = docker_val.instantiate(image, labels(docker_val, image))
    again = docker_val.instantiate(image, labels(docker_val, image))
    assert first == again, "a second start must find the running container"
    assert docker_val.status(image.id).state is ImageState.RUNNING
    assert [i.image_id for i in docker_val.list_instances()] == [image.id]
    assert docker_val.terminate(image.id) is True
    assert docker_val.terminate(image.id) is False
    gone = docker_val.status(image.id)
    assert gone.state is ImageState.ERROR and not gone.exists


def test_docker_exit_codes_map_to_states(docker_val: DockerVAL) -> None:
    ok = Image(id=str(uuid.uuid4()), name=TEST_IMAGE, parameters={"command": "true"})
    bad = Image(id=str(uuid.uuid4()), name=TEST_IMAGE, parameters={"command": "sh -c 'exit 3'"})
    docker_val.instantiate(ok, labels(docker_val, ok))
    docker_val.instantiate(bad, labels(docker_val, bad))
    wait_for(lambda: docker_val.status(ok.id).state is ImageState.TERMINATED, what="exit 0")
    status = wait_for(
        lambda: (s := docker_val.status(bad.id)).state is ImageState.ERROR and s, what="exit 3"
    )
    assert "code 3" in status.message


def test_docker_parameter_validation(docker_val: DockerVAL) -> None:
    docker_val.validate_parameters({"ports": {"80/tcp": 8081}, "name": "x"}, "images[0].parameters")
    with pytest.raises(ValidationError) as unknown:
        docker_val.validate_parameters({"colour": "red"}, "images[0].parameters")
    assert unknown.value.field == "images[0].parameters.colour"
    with pytest.raises(ValidationError) as typed:
        docker_val.validate_parameters({"ports": "80:80"}, "images[1].parameters")
    assert typed.value.field == "images[1].parameters.ports"
    with pytest.raises(ValidationError, match="reserved"):
        docker_val.validate_parameters({"labels": {"motey.node_id": "x"}}, "p")


def test_missing_image_pull_fails_clearly(docker_val: DockerVAL) -> None:
    docker_val.ensure_image(TEST_IMAGE)
    with pytest.raises(ImageUnavailable, match="cannot be pulled"):
        docker_val.ensure_image("127.0.0.1:9/motey/absent:1")
    docker_val.settings["pull_missing"] = False
    with pytest.raises(ImageUnavailable, match="pulling is disabled"):
        docker_val.ensure_image("motey/absent-too:1")


def test_published_port_from_yaml_list_serves_http(docker_val: DockerVAL) -> None:
    import requests

    from tests.helpers import free_port

    port = free_port("127.0.0.1")
    image = Image(
        id=str(uuid.uuid4()),
        name=TEST_IMAGE,
        parameters={
            "command": "httpd -f -p 8080 -h /www",
            "ports": {"8080/tcp": ["127.0.0.1", port]},  # YAML's form of (ip, port)
        },
    )
    docker_val.instantiate(image, labels(docker_val, image))
    body = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=1).text, what="httpd")
    assert "motey test image" in body
