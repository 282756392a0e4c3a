"""The blueprint policy: each dangerous parameter refused by default, allowed only by its
own key, and refused by the node that would run it whatever the owner's policy says."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.errors import ConfigError, PolicyError
from motey.models.image import Image
from motey.node.identity import NodeIdentity
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.policy import BlueprintPolicy
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository

ALLOW_ALL = {
    "allow_privileged": "true",
    "allow_host_network": "true",
    "allow_host_pid": "true",
    "allow_host_ipc": "true",
    "allowed_cap_add": "ALL",
    "allow_devices": "true",
    "allowed_bind_paths": "/",
    "allow_docker_socket": "true",
    "allow_root_user": "true",
    "allow_restart_policy": "true",
    "max_shm_size": "128g",
}

#: (parameters, the policy keys that allow them: their own, plus the Docker socket's for
#: a bind of / that holds it)
DANGEROUS: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"privileged": True}, {"allow_privileged": "true"}),
    ({"network_mode": "host"}, {"allow_host_network": "true"}),
    ({"network_mode": "container:other"}, {"allow_host_network": "true"}),
    ({"pid_mode": "host"}, {"allow_host_pid": "true"}),
    ({"ipc_mode": "host"}, {"allow_host_ipc": "true"}),
    ({"cap_add": ["SYS_ADMIN"]}, {"allowed_cap_add": "SYS_ADMIN"}),
    ({"cap_add": ["ALL"]}, {"allowed_cap_add": "ALL"}),
    ({"devices": ["/dev/null:/dev/x:rwm"]}, {"allow_devices": "true"}),
    ({"volumes": ["/:/host:rw"]}, {"allowed_bind_paths": "/", "allow_docker_socket": "true"}),
    ({"volumes": {"/etc": {"bind": "/e", "mode": "ro"}}}, {"allowed_bind_paths": "/etc"}),
    ({"user": "0:0"}, {"allow_root_user": "true"}),
    ({"user": "root"}, {"allow_root_user": "true"}),
    ({"user": 0}, {"allow_root_user": "true"}),
    ({"restart_policy": {"Name": "always"}}, {"allow_restart_policy": "true"}),
    ({"restart_policy": {"Name": "unless-stopped"}}, {"allow_restart_policy": "true"}),
    ({"shm_size": "64g"}, {"max_shm_size": "64g"}),
]

KEY_OF = {
    "privileged": "allow_privileged",
    "network_mode": "allow_host_network",
    "pid_mode": "allow_host_pid",
    "ipc_mode": "allow_host_ipc",
    "cap_add": "allowed_cap_add",
    "devices": "allow_devices",
    "volumes": "allowed_bind_paths",
    "user": "allow_root_user",
    "restart_policy": "allow_restart_policy",
    "shm_size": "max_shm_size",
}


def image(parameters: dict[str, Any], name: str = "motey-test/busybox:latest") -> Image:
    return Image(id="i-1", name=name, engine="docker", parameters=parameters)


@pytest.mark.parametrize(("parameters", "allowance"), DANGEROUS)
def test_dangerous_parameter_refused_by_default_and_allowed_only_by_its_key(
    parameters: dict[str, Any], allowance: dict[str, str]
) -> None:
    (param,) = parameters
    key = KEY_OF[param]
    with pytest.raises(PolicyError) as info:
        BlueprintPolicy().check(image(parameters), "images[0]")
    assert info.value.http_status == 403
    assert info.value.details == {
        "parameter": f"images[0].parameters.{param}",
        "policy_key": key,
    }
    assert f"images[0].parameters.{param}" in info.value.message
    assert f"[POLICY] {key}" in info.value.message

    # Every other allowance together does not allow it ...
    others = {k: v for k, v in ALLOW_ALL.items() if k != key}
    with pytest.raises(PolicyError):
        BlueprintPolicy.from_config(others).check(image(parameters))
    # ... its own key does.
    BlueprintPolicy.from_config(allowance).check(image(parameters))


def test_harmless_parameters_pass_the_default_policy() -> None:
    BlueprintPolicy().check(
        image(
            {
                "command": "sleep 1",
                "network_mode": "bridge",
                "ipc_mode": "private",
                "user": "1000:1000",
                "restart_policy": {"Name": "no"},
                "volumes": {"data": {"bind": "/data", "mode": "rw"}},  # a named volume
            }
        )
    )


def test_shm_size_is_capped_by_max_shm_size() -> None:
    """/dev/shm is host memory: 64g was accepted before; the default cap is 256m."""
    BlueprintPolicy().check(image({"shm_size": "256m"}))
    BlueprintPolicy().check(image({"shm_size": 64 * 1024 * 1024}))
    with pytest.raises(PolicyError, match="max_shm_size"):
        BlueprintPolicy().check(image({"shm_size": "257m"}))
    with pytest.raises(ConfigError, match="max_shm_size"):
        BlueprintPolicy.from_config({"max_shm_size": "lots"})


def test_cap_add_lists_only_named_capabilities() -> None:
    policy = BlueprintPolicy.from_config({"allowed_cap_add": "NET_ADMIN, cap_net_raw"})
    policy.check(image({"cap_add": ["NET_ADMIN", "CAP_NET_RAW"]}))
    with pytest.raises(PolicyError, match="SYS_ADMIN"):
        policy.check(image({"cap_add": ["NET_ADMIN", "SYS_ADMIN"]}))
    with pytest.raises(PolicyError):
        policy.check(image({"cap_add": ["ALL"]}))


def test_bind_paths_allow_a_folder_and_below_only(tmp_path: Path) -> None:
    allowed = tmp_path / "data"
    (allowed / "sub").mkdir(parents=True)
    policy = BlueprintPolicy.from_config({"allowed_bind_paths": str(allowed)})
    policy.check(image({"volumes": [f"{allowed}:/d", f"{allowed}/sub:/s:ro"]}))
    for outside in (str(tmp_path), f"{allowed}-other", f"{allowed}/../etc", "/etc"):
        with pytest.raises(PolicyError, match="allowed_bind_paths"):
            policy.check(image({"volumes": [f"{outside}:/x"]}))
    # A symbolic link inside the allowed folder that points outside does not get out.
    os.symlink("/etc", allowed / "escape")
    with pytest.raises(PolicyError, match="allowed_bind_paths"):
        policy.check(image({"volumes": [f"{allowed}/escape:/x"]}))


@pytest.mark.parametrize(
    "source", ["/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/"]
)
def test_docker_socket_needs_its_own_key_even_inside_allowed_bind_paths(source: str) -> None:
    policy = BlueprintPolicy.from_config({"allowed_bind_paths": "/"})
    with pytest.raises(PolicyError) as info:
        policy.check(image({"volumes": [f"{source}:/s"]}))
    assert info.value.details["policy_key"] == "allow_docker_socket"
    BlueprintPolicy.from_config({"allowed_bind_paths": "/", "allow_docker_socket": "true"}).check(
        image({"volumes": [f"{source}:/s"]})
    )


def test_configured_docker_url_socket_is_protected_too() -> None:
    policy = BlueprintPolicy.from_config(
        {"allowed_bind_paths": "/srv"}, docker_url="unix:///srv/engine/docker.sock"
    )
    with pytest.raises(PolicyError, match="allow_docker_socket"):
        policy.check(image({"volumes": ["/srv/engine:/e"]}))
    policy.check(image({"volumes": ["/srv/data:/d"]}))


def test_allowed_images_are_globs() -> None:
    policy = BlueprintPolicy.from_config({"allowed_images": "registry.local/*, motey-test/*"})
    policy.check(image({}, name="motey-test/busybox:latest"))
    policy.check(image({}, name="registry.local/team/app:1"))
    with pytest.raises(PolicyError) as info:
        policy.check(image({}, name="busybox:latest"), "images[2]")
    assert info.value.details == {"parameter": "images[2].name", "policy_key": "allowed_images"}
    BlueprintPolicy().check(image({}, name="anything/at:all"))  # default: any image


# -- the node that runs the image decides ------------------------------------------------


class RecordingVAL:
    """The part of the VALManager the executor uses; records what it would start."""

    def __init__(self) -> None:
        self.started: list[Image] = []

    def validate(self, image: Image, field: str) -> None:
        pass

    def instantiate(self, image: Image) -> str:
        self.started.append(image)
        return "container-1"


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    database = Database(tmp_path / "capabilities.json").open()
    yield CapabilityEngine(CapabilityRepository(database))
    database.close()


def executor(engine: CapabilityEngine, val: RecordingVAL, policy: BlueprintPolicy) -> ImageExecutor:
    identity = NodeIdentity("peer-id", "peer", "127.0.0.1", {})
    identity.set_lifecycle("OPERATE", "test")
    return ImageExecutor(identity, val, engine, policy=policy)  # type: ignore[arg-type]


@pytest.mark.parametrize(("parameters", "allowance"), DANGEROUS)
def test_peer_refuses_what_its_own_policy_forbids_whatever_the_owner_allowed(
    engine: CapabilityEngine, parameters: dict[str, Any], allowance: dict[str, str]
) -> None:
    request = image(parameters)
    BlueprintPolicy.from_config(allowance).check(request)  # the owner let it through
    val = RecordingVAL()
    peer = executor(engine, val, BlueprintPolicy())
    with pytest.raises(PolicyError, match="node peer"):
        peer.check_peer_request(request)
    with pytest.raises(PolicyError):
        peer.deploy(request)  # also when a caller skips the check
    assert val.started == []
    executor(engine, val, BlueprintPolicy.from_config(allowance)).deploy(request)
    assert len(val.started) == 1
