"""The blueprint policy: what an image may ask of the host that runs it.

Everything that reaches past the container - privileged mode, the host's network, PID
and IPC namespaces, added kernel capabilities, devices, bind mounts, the Docker socket,
running as root, restart policies that restart what Motey stopped, and images from
anywhere - is refused unless this node's ``[POLICY]`` section allows it, each with its
own key. The node that takes a blueprint checks it up front (403 naming the parameter
and the key); the node that would run an image checks again with its own policy, so a
peer's deploy request cannot bypass it. See docs/security.md.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from motey.errors import ConfigError, MoteyError, PolicyError
from motey.models.image import Image

#: Where Docker's API socket lives on common hosts; binding it (or a folder above it)
#: hands the container the whole engine.
DOCKER_SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock")

_TRUE = {"1", "yes", "true", "on"}
_ROOT_USERS = {"root", "0"}


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


def _items(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    return tuple(str(v).strip() for v in (value or ()) if str(v).strip())


@dataclass(frozen=True)
class BlueprintPolicy:
    """One node's ``[POLICY]``; the defaults refuse everything that reaches the host."""

    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_host_pid: bool = False
    allow_host_ipc: bool = False
    allowed_cap_add: tuple[str, ...] = ()
    allow_devices: bool = False
    allowed_bind_paths: tuple[str, ...] = ()
    allow_docker_socket: bool = False
    allow_root_user: bool = False
    allow_restart_policy: bool = False
    allowed_images: tuple[str, ...] = ("*",)
    #: Bytes of /dev/shm an image may ask for: it is a tmpfs in the host's memory.
    max_shm_size: int = 256 * 1024 * 1024
    docker_sockets: tuple[str, ...] = field(default=DOCKER_SOCKET_PATHS)

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, docker_url: str = ""
    ) -> BlueprintPolicy:
        """Build from the ``[POLICY]`` section (strings or typed values)."""
        s = dict(section or {})
        sockets = list(DOCKER_SOCKET_PATHS)
        if docker_url.startswith("unix://"):
            path = "/" + docker_url[len("unix://") :].lstrip("/")
            sockets.append(posixpath.normpath(path))
        images = _items(s.get("allowed_images", "*"))
        return cls(
            allow_privileged=_flag(s.get("allow_privileged", False)),
            allow_host_network=_flag(s.get("allow_host_network", False)),
            allow_host_pid=_flag(s.get("allow_host_pid", False)),
            allow_host_ipc=_flag(s.get("allow_host_ipc", False)),
            allowed_cap_add=tuple(_cap(c) for c in _items(s.get("allowed_cap_add", ""))),
            allow_devices=_flag(s.get("allow_devices", False)),
            allowed_bind_paths=tuple(
                posixpath.normpath(p) for p in _items(s.get("allowed_bind_paths", ""))
            ),
            allow_docker_socket=_flag(s.get("allow_docker_socket", False)),
            allow_root_user=_flag(s.get("allow_root_user", False)),
            allow_restart_policy=_flag(s.get("allow_restart_policy", False)),
            allowed_images=images,
            max_shm_size=parse_bytes(
                s.get("max_shm_size", "256m"), "[POLICY] max_shm_size", ConfigError
            ),
            docker_sockets=tuple(dict.fromkeys(sockets)),
        )

    # -- checking --------------------------------------------------------------------
    def check(self, image: Image, field: str = "image", node: str = "this node") -> None:
        """Raise :class:`PolicyError` for the first thing ``image`` may not do here."""
        if not any(fnmatch.fnmatchcase(image.name, glob) for glob in self.allowed_images):
            self._refuse(node, f"{field}.name", "allowed_images", f"image {image.name!r}")
        if image.engine != "docker" or not isinstance(image.parameters, dict):
            return
        params = image.parameters
        where = f"{field}.parameters"
        if params.get("privileged") is True and not self.allow_privileged:
            self._refuse(node, f"{where}.privileged", "allow_privileged", "privileged mode")
        for key, policy_key, allowed in (
            ("network_mode", "allow_host_network", self.allow_host_network),
            ("pid_mode", "allow_host_pid", self.allow_host_pid),
            ("ipc_mode", "allow_host_ipc", self.allow_host_ipc),
        ):
            mode = params.get(key)
            if isinstance(mode, str) and _shares_namespace(mode) and not allowed:
                self._refuse(node, f"{where}.{key}", policy_key, f"{key} {mode!r}")
        for cap in params.get("cap_add") or []:
            name = _cap(str(cap))
            if name not in self.allowed_cap_add and "ALL" not in self.allowed_cap_add:
                self._refuse(node, f"{where}.cap_add", "allowed_cap_add", f"capability {name}")
        if params.get("devices") and not self.allow_devices:
            self._refuse(node, f"{where}.devices", "allow_devices", "device access")
        for source in _bind_sources(params.get("volumes")):
            self._check_bind(source, f"{where}.volumes", node)
        user = params.get("user")
        if user is not None and _is_root(user) and not self.allow_root_user:
            self._refuse(node, f"{where}.user", "allow_root_user", f"user {user!r}")
        shm = params.get("shm_size")
        if shm is not None and parse_bytes(shm, f"{where}.shm_size") > self.max_shm_size:
            self._refuse(
                node, f"{where}.shm_size", "max_shm_size", f"shm_size {shm!r} (host memory)"
            )
        restart = params.get("restart_policy")
        policy_name = restart.get("Name") if isinstance(restart, dict) else None
        if policy_name not in (None, "", "no") and not self.allow_restart_policy:
            self._refuse(
                node,
                f"{where}.restart_policy",
                "allow_restart_policy",
                f"restart policy {policy_name!r}",
            )

    def _check_bind(self, source: str, where: str, node: str) -> None:
        path = posixpath.normpath(source)
        resolved = posixpath.normpath(os.path.realpath(path))
        if not any(
            _within(path, root) and _within(resolved, root) for root in self.allowed_bind_paths
        ):
            self._refuse(node, where, "allowed_bind_paths", f"bind of host path {source!r}")
        if self.allow_docker_socket:
            return
        for candidate in {path, resolved}:
            for sock in self.docker_sockets:
                if _within(sock, candidate) or _within(candidate, sock):
                    self._refuse(node, where, "allow_docker_socket", f"bind of {source!r}")

    @staticmethod
    def _refuse(node: str, parameter: str, key: str, what: str) -> None:
        raise PolicyError(
            f"{parameter}: {what} is refused by the blueprint policy of {node} ([POLICY] {key})",
            field=parameter,
            details={"parameter": parameter, "policy_key": key},
        )


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bytes(value: Any, field: str, error: type[MoteyError] = PolicyError) -> int:
    """``123``, ``512m``, ``1g`` as bytes (Docker's units), or ``error`` naming ``field``."""
    text = str(value).strip().lower()
    unit = text[-1] if text and text[-1] in _UNITS else ""
    number = text[: len(text) - len(unit)]
    if not number.isdigit():
        raise error(f"{field}: {value!r} is not a size like 64m or 1g", field=field)
    return int(number) * _UNITS[unit]


def _cap(name: str) -> str:
    name = name.strip().upper()
    return name[len("CAP_") :] if name.startswith("CAP_") else name


def _shares_namespace(mode: str) -> bool:
    """``host`` and ``container:<id>`` (another container's, maybe not Motey's)."""
    return mode == "host" or mode.startswith("container:")


def _is_root(user: Any) -> bool:
    text = str(user).strip()
    return text.split(":", 1)[0] in _ROOT_USERS


def _within(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


def _bind_sources(volumes: Any) -> Iterable[str]:
    """Host paths of ``volumes`` (dict or ``src:dst[:mode]`` list); named volumes skipped."""
    if isinstance(volumes, dict):
        sources = [str(k) for k in volumes]
    elif isinstance(volumes, list):
        sources = [str(v).split(":", 1)[0] for v in volumes]
    else:
        sources = []
    return [s for s in sources if s.startswith("/") or s.startswith(".") or s.startswith("~")]
