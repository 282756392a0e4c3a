"""Compose files as blueprints: the mapping, and keys Motey cannot honour refused."""

from __future__ import annotations

import textwrap

import pytest

from motey.errors import ValidationError
from motey.orchestrator.compose import compose_to_blueprint
from tests.helpers import TEST_IMAGE, MoteyNode


def compose(text: str, name: str | None = "proj") -> dict:
    return compose_to_blueprint(textwrap.dedent(text), name)


def test_each_service_becomes_an_image_with_its_settings() -> None:
    blueprint = compose(
        """
        version: "3.8"
        name: line-4
        services:
          reader:
            image: factory/reader:1.2
            command: ["python", "read.py"]
            environment: {MODE: fast, RETRIES: 3, DEBUG: false}
            ports: ["8080:80", "127.0.0.1:9000:9000/udp", "5000", {target: 22, published: 2222}]
            volumes: ["/srv/data:/data:ro", "cache:/cache"]
            devices: ["/dev/ttyUSB0:/dev/ttyUSB0"]
            labels: ["team=ops"]
            restart: on-failure:3
            x-motey-capabilities: [zigbee, "memory_mb>=256"]
          camera:
            image: factory/camera
            environment: ["A=1", "B=x=y"]
            deploy:
              placement:
                constraints:
                  - node.labels.camera == true
                  - node.labels.gpu != true
                  - node.labels.arch == arm64
        """
    )
    assert blueprint["service_name"] == "line-4"  # the file's name: wins over ?name=
    reader, camera = blueprint["images"]
    assert reader == {
        "name": "factory/reader:1.2",
        "engine": "docker",
        "parameters": {
            "command": ["python", "read.py"],
            "environment": {"MODE": "fast", "RETRIES": "3", "DEBUG": "false"},
            "labels": {"team": "ops", "com.docker.compose.service": "reader"},
            "ports": {
                "80/tcp": 8080,
                "9000/udp": ["127.0.0.1", 9000],
                "5000/tcp": None,
                "22/tcp": 2222,
            },
            "volumes": ["/srv/data:/data:ro", "cache:/cache:rw"],
            "devices": ["/dev/ttyUSB0:/dev/ttyUSB0"],
            "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
        },
        "capabilities": ["zigbee", "memory_mb>=256"],
    }
    assert camera["parameters"]["environment"] == {"A": "1", "B": "x=y"}
    assert camera["capabilities"] == ["camera", "!gpu", "arch=arm64"]


def test_host_container_pairs_are_strings_as_in_compose() -> None:
    """YAML 1.1 would read an unquoted 22:22 as 1342 (base 60); Compose reads a string."""
    blueprint = compose("services:\n  a:\n    image: x\n    ports:\n      - 22:22\n      - 80\n")
    assert blueprint["images"][0]["parameters"]["ports"] == {"22/tcp": 22, "80/tcp": None}
    assert compose("name: n\nservices:\n  a:\n    image: x\n    environment: {A: 1.5}\n")["images"][
        0
    ]["parameters"]["environment"] == {"A": "1.5"}


def test_the_name_comes_from_the_request_when_the_file_has_none() -> None:
    text = f"services:\n  a:\n    image: {TEST_IMAGE}\n"
    assert compose_to_blueprint(text, "my project")["service_name"] == "my-project"
    with pytest.raises(ValidationError, match="top-level name"):
        compose_to_blueprint(text, None)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            """
            services:
              web:
                image: nginx
                build: .
                networks: [front]
                healthcheck: {test: ["CMD", "true"]}
            networks: {front: {}}
            volumes: {data: {}}
            """,
            [
                "networks",
                "volumes",
                "services.web.build",
                "services.web.networks",
                "services.web.healthcheck",
            ],
        ),
        (
            """
            services:
              web:
                image: nginx
                deploy: {replicas: 3, placement: {constraints: [], preferences: []}}
            """,
            ["services.web.deploy.replicas", "services.web.deploy.placement.preferences"],
        ),
    ],
)
def test_keys_motey_cannot_honour_are_all_named(text: str, named: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        compose(text)
    assert caught.value.details == {"unsupported": named}
    for key in named:
        assert key in caught.value.message


@pytest.mark.parametrize(
    ("service", "field"),
    [
        ("command: x", "services.a.image"),
        (
            f"image: {TEST_IMAGE}\n    deploy: {{placement: {{constraints: [node.role==x]}}}}",
            "services.a.deploy.placement.constraints[0]",
        ),
        (f"image: {TEST_IMAGE}\n    ports: ['8000-8010:8000-8010']", "services.a.ports[0]"),
        (f"image: {TEST_IMAGE}\n    volumes: ['/anonymous']", "services.a.volumes[0]"),
        (f"image: {TEST_IMAGE}\n    volumes: ['./data:/data']", "services.a.volumes[0]"),
        (f"image: {TEST_IMAGE}\n    ports: ['70000:80']", "services.a.ports[0]"),
        (
            f"image: {TEST_IMAGE}\n    environment: {{FROM_SHELL: null}}",
            "services.a.environment.FROM_SHELL",
        ),
        (
            f"image: {TEST_IMAGE}\n    x-motey-capabilities: ['bad cap!']",
            "services.a.capabilities[0]",
        ),
    ],
)
def test_values_that_cannot_be_honoured_name_their_field(service: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        compose_to_blueprint(f"services:\n  a:\n    {service}\n", "p")
    assert caught.value.field == field


def test_the_blueprint_limits_apply() -> None:
    with pytest.raises(ValidationError, match="larger than"):
        compose_to_blueprint("services: {}\n#" + "x" * 300_000, "p")
    with pytest.raises(ValidationError, match="invalid YAML"):
        compose_to_blueprint("services: [\n", "p")
    with pytest.raises(ValidationError, match="could not determine a constructor"):
        compose_to_blueprint("!!python/object:os.system {}\n", "p")  # safe_load only
    with pytest.raises(ValidationError, match="services: mapping"):
        compose_to_blueprint("images: []\n", "p")


def test_rest_takes_compose_and_refuses_unknown_keys_with_400(node: MoteyNode) -> None:
    bad = node.request(
        "POST",
        "/v1/service?name=p",
        data=f"services:\n  a:\n    image: {TEST_IMAGE}\n    networks: [x]\n".encode(),
        headers={"Content-Type": "application/compose+yaml"},
    )
    assert bad.status_code == 400
    assert bad.json()["details"] == {"unsupported": ["services.a.networks"]}
    assert node.get("/v1/service").json() == []  # nothing stored
    good = node.post_yaml(
        f"""
        name: line-7
        services:
          worker:
            image: {TEST_IMAGE}
            command: [sleep, "600"]
        """,
        content_type="application/compose+yaml",
    )
    assert good.status_code == 201, good.text
    assert good.json()["service_name"] == "line-7"
    image = good.json()["images"][0]
    assert image["parameters"]["labels"] == {"com.docker.compose.service": "worker"}
    node.wait_service_state(good.json()["id"], "RUNNING")
    other = node.post_yaml("services: {}", content_type="text/plain")
    assert other.status_code == 415 and "application/compose+yaml" in other.json()["message"]
