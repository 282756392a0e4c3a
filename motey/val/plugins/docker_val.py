"""Docker engine plugin: the only module of Motey that imports ``docker``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import docker
import docker.errors
import logbook

from motey.errors import EngineError, ImageUnavailable, NotFoundError, ValidationError
from motey.models.image import Image, ImageState
from motey.schemas.validation import validate
from motey.val.plugin import (
    LABEL_IMAGE_ID,
    LABEL_NODE_ID,
    MAX_LOG_BYTES,
    MAX_LOG_LINES,
    InstanceInfo,
    InstanceStatus,
    LogChunk,
    VALPlugin,
)
from motey.val.plugins.docker_schema import (
    ALLOWED_PARAMETERS,
    DOCKER_PARAMETERS_SCHEMA,
    IGNORED_PARAMETERS,
)

log = logbook.Logger(__name__)

#: A container id as Docker prints it: 64 hex digits, or a prefix of them (docker-py's
#: ``short_id`` is 12 digits, the 2017 docker-py the original used made it 10).
_CONTAINER_ID = re.compile(r"^[0-9a-f]{10,64}$")

_STATE_MAP = {
    "created": ImageState.INITIAL,
    "restarting": ImageState.INSTANTIATING,
    "running": ImageState.RUNNING,
    "paused": ImageState.RUNNING,
}


class DockerVAL(VALPlugin):
    """Runs Motey images as Docker containers labelled with node, service and image id."""

    name = "docker"

    def __init__(self, settings: dict[str, Any], node_id: str) -> None:
        super().__init__(settings, node_id)
        self._client: docker.DockerClient | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        url = self.settings.get("url") or "unix://var/run/docker.sock"
        try:
            client = docker.DockerClient(
                base_url=url, timeout=int(self.settings.get("timeout", 60))
            )
            client.ping()
        except docker.errors.DockerException as exc:
            raise EngineError(f"Docker engine at {url} does not answer: {exc}") from exc
        self._client = client
        log.info("connected to Docker engine at {}", url)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self.start()
        assert self._client is not None
        return self._client

    # -- contract ------------------------------------------------------------------
    def capabilities(self) -> list[dict[str, Any]]:
        return [{"capability": "docker", "capability_type": "engine"}]

    def validate_parameters(self, parameters: dict[str, Any], field: str) -> None:
        if not isinstance(parameters, dict):
            raise ValidationError(f"invalid blueprint: {field}: must be a mapping", field=field)
        for key in parameters:
            if key not in ALLOWED_PARAMETERS:
                allowed = ", ".join(ALLOWED_PARAMETERS)
                raise ValidationError(
                    f"invalid blueprint: {field}.{key}: unknown docker parameter "
                    f"(allowed: {allowed})",
                    field=f"{field}.{key}",
                )
        validate(parameters, DOCKER_PARAMETERS_SCHEMA, "blueprint", prefix=field)
        labels = parameters.get("labels") or {}
        if any(str(k).startswith("motey.") for k in labels):
            raise ValidationError(
                f"invalid blueprint: {field}.labels: the motey.* labels are reserved",
                field=f"{field}.labels",
            )
        for port in parameters.get("ports") or {}:
            if not 1 <= int(str(port).split("/", 1)[0]) <= 65535:
                raise ValidationError(
                    f"invalid blueprint: {field}.ports.{port}: container port must be "
                    "between 1 and 65535",
                    field=f"{field}.ports.{port}",
                )

    def ensure_image(self, name: str) -> None:
        try:
            self.client.images.get(name)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise EngineError(
                f"Docker could not inspect image {name!r}: {exc.explanation}"
            ) from exc
        if not self.settings.get("pull_missing", True):
            raise ImageUnavailable(
                f"image {name!r} is not present on this node and pulling is disabled "
                "([DOCKER] pull_missing = false)"
            )
        repository, tag = _split_reference(name)
        log.info("pulling image {}:{}", repository, tag)
        try:
            self.client.images.pull(repository, tag=tag)
        except docker.errors.DockerException as exc:
            reason = getattr(exc, "explanation", None) or str(exc)
            raise ImageUnavailable(
                f"image {name!r} is not present on this node and cannot be pulled: {reason}"
            ) from exc

    def instantiate(self, image: Image, labels: dict[str, str]) -> str:
        existing = self._find(image.id)
        if existing is not None:
            if existing.status == "running":
                log.info("image {} already runs as container {}", image.id, existing.short_id)
                return str(existing.id)
            # A leftover from an interrupted start: replace it rather than run a second one.
            self._remove(existing)
        params = {k: v for k, v in image.parameters.items() if k not in IGNORED_PARAMETERS}
        params["labels"] = {**params.get("labels", {}), **labels}
        if "ports" in params:
            params["ports"] = _docker_ports(params["ports"])
        try:
            # create + start is what ``containers.run(detach=True)`` does, without its
            # fallback of pulling a missing image behind ``pull_missing``'s back: the
            # manager asks ensure_image() only when the image is missing.
            container = self.client.containers.create(image.name, detach=True, **params)
            container.start()
        except docker.errors.ImageNotFound as exc:
            raise ImageUnavailable(f"image {image.name!r} is not present on this node") from exc
        except docker.errors.APIError as exc:
            self._cleanup_failed(image.id)
            raise EngineError(
                f"Docker could not start image {image.name!r}: {exc.explanation or exc}"
            ) from exc
        except docker.errors.DockerException as exc:
            self._cleanup_failed(image.id)
            raise EngineError(f"Docker could not start image {image.name!r}: {exc}") from exc
        log.info("started image {} ({}) as container {}", image.id, image.name, container.short_id)
        return str(container.id)

    def status(self, image_id: str) -> InstanceStatus:
        container = self._find(image_id)
        if container is None:
            return InstanceStatus(
                ImageState.ERROR, "container not found (removed outside Motey?)", exists=False
            )
        state = container.attrs.get("State", {})
        status = state.get("Status", container.status)
        if status in _STATE_MAP:
            message = "paused" if status == "paused" else ""
            return InstanceStatus(_STATE_MAP[status], message, instance_id=container.id)
        if status == "removing":
            # Motey never asks while removing its own containers: someone else does it.
            return InstanceStatus(
                ImageState.ERROR,
                "container is being removed outside Motey",
                instance_id=container.id,
            )
        if status == "exited":
            code = state.get("ExitCode", 0)
            if code == 0:
                return InstanceStatus(
                    ImageState.TERMINATED, "container exited with code 0", instance_id=container.id
                )
            error = state.get("Error") or ""
            message = f"container exited with code {code}" + (f": {error}" if error else "")
            return InstanceStatus(ImageState.ERROR, message, instance_id=container.id)
        return InstanceStatus(ImageState.ERROR, f"container is {status}", instance_id=container.id)

    def terminate(self, image_id: str) -> bool:
        found = False
        for container in self._find_all(image_id):
            found = True
            self._remove(container)
        return found

    def list_instances(self) -> list[InstanceInfo]:
        try:
            # Sparse: the list call alone has ids, labels and states. Without it docker-py
            # inspects every container once more, and the fence lists every second (a
            # node running 200 images sent Docker 200 inspections a second).
            containers = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_NODE_ID}={self.node_id}"}, sparse=True
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"Docker could not list containers: {exc}") from exc
        result = []
        for container in containers:
            state = _STATE_MAP.get(container.status, ImageState.ERROR)
            labels = container.attrs.get("Labels") or {}
            result.append(InstanceInfo(str(container.id), dict(labels), state))
        return result

    def events(self) -> _DockerEvents:
        """Docker's event stream, only this node's containers and only the actions that
        change a container's state. It has a client of its own, so closing it (from
        any thread) ends only the stream."""
        url = self.settings.get("url") or "unix://var/run/docker.sock"
        client = None
        try:
            timeout = int(self.settings.get("timeout", 60))
            client = docker.DockerClient(base_url=url, timeout=timeout)
            stream = client.api.events(
                decode=True,
                filters={
                    "type": "container",
                    "label": [f"{LABEL_NODE_ID}={self.node_id}"],
                    "event": list(_STATE_EVENTS),
                },
            )
        except Exception as exc:  # DockerException, or requests' connection errors
            if client is not None:
                client.close()
            raise EngineError(f"Docker events at {url} unavailable: {exc}") from exc
        return _DockerEvents(client, stream)

    def logs(self, image_id: str, tail: int | None = None, since: float | None = None) -> LogChunk:
        container = self._find(image_id)
        if container is None:
            raise NotFoundError(f"no container of image {image_id} on this node", field="image_id")
        wanted = MAX_LOG_LINES if tail is None else max(0, min(int(tail), MAX_LOG_LINES))
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True}
        kwargs["tail"] = wanted
        if since is not None and since > 0:
            kwargs["since"] = float(since)
        try:
            raw = container.logs(**kwargs)
        except docker.errors.DockerException as exc:
            raise EngineError(f"Docker could not read the logs of image {image_id}: {exc}") from exc
        return _log_chunk(raw.decode("utf-8", errors="replace"), since)

    # -- helpers -------------------------------------------------------------------
    def _find_all(self, image_id: str) -> list[Any]:
        """This node's containers of ``image_id``: by the image-id label, else by id.

        An original Motey keeps the container id its deploy request was answered with as
        the image's id and sends that back in status and terminate requests, so an id
        that matches no label is also tried as a container id (full or a prefix), among
        this node's own containers only.
        """
        filters = {"label": [f"{LABEL_IMAGE_ID}={image_id}", f"{LABEL_NODE_ID}={self.node_id}"]}
        try:
            found = list(self.client.containers.list(all=True, filters=filters))
            if found or not _CONTAINER_ID.match(image_id):
                return found
            own = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_NODE_ID}={self.node_id}"}
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"Docker could not list containers: {exc}") from exc
        matches = [c for c in own if str(c.id).startswith(image_id)]
        return matches if len(matches) == 1 else []

    def _find(self, image_id: str) -> Any | None:
        containers = self._find_all(image_id)
        running = [c for c in containers if c.status == "running"]
        return (running or containers or [None])[0]

    def _remove(self, container: Any) -> None:
        timeout = int(self.settings.get("stop_timeout", 10))
        try:
            if container.status in ("running", "restarting", "paused"):
                container.stop(timeout=timeout)
            container.remove(force=True)
            log.info("removed container {}", container.short_id)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc.explanation):
                return
            raise EngineError(
                f"Docker could not remove container {container.short_id}: {exc}"
            ) from exc

    def _cleanup_failed(self, image_id: str) -> None:
        """Remove a container that was created but failed to start."""
        try:
            for container in self._find_all(image_id):
                container.remove(force=True)
        except docker.errors.DockerException as exc:
            log.warning("could not clean up failed container of image {}: {}", image_id, exc)


#: Container events after which its state may differ (not exec_*, health, rename...).
_STATE_EVENTS = (
    "create",
    "start",
    "restart",
    "pause",
    "unpause",
    "kill",
    "die",
    "oom",
    "stop",
    "destroy",
)


class _DockerEvents:
    """:class:`~motey.val.plugin.InstanceEvents` over Docker's ``/events`` stream."""

    def __init__(self, client: docker.DockerClient, stream: Any) -> None:
        self._client = client
        self._stream = stream
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        for event in self._stream:  # ends when Docker or close() ends the connection
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            image_id = attributes.get(LABEL_IMAGE_ID)
            if image_id:
                yield str(image_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.close()
        except Exception as exc:  # a stream Docker already ended
            log.debug("closing the Docker event stream: {}", exc)
        self._client.close()


def _docker_ports(ports: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML's ``[ip, port]`` into the ``(ip, port)`` tuple docker-py expects.

    YAML has no tuples, and docker-py reads a list as "several host ports", so
    ``{"80/tcp": ["127.0.0.1", 8080]}`` would otherwise be rejected.
    """
    result: dict[str, Any] = {}
    for container_port, host in ports.items():
        if (
            isinstance(host, list)
            and len(host) == 2
            and isinstance(host[0], str)
            and isinstance(host[1], int)
        ):
            result[container_port] = (host[0], host[1])
        else:
            result[container_port] = host
    return result


def _log_chunk(text: str, since: float | None) -> LogChunk:
    """Split Docker's timestamped output into lines within the byte limit."""
    lines: list[str] = []
    last_ts: float | None = None
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        ts = _parse_timestamp(stamp)
        if ts is None:  # a line Docker did not stamp (should not happen): keep it whole
            lines.append(line)
            continue
        last_ts = ts
        lines.append(rest)
    truncated = len(lines) >= MAX_LOG_LINES
    size = 0
    keep = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        size += len(lines[index].encode("utf-8")) + 1
        if size > MAX_LOG_BYTES:
            keep = len(lines) - 1 - index
            truncated = True
            break
    next_since = (last_ts + 1e-6) if last_ts is not None else since
    return LogChunk(lines[len(lines) - keep :], next_since, truncated)


def _parse_timestamp(stamp: str) -> float | None:
    """Docker's RFC 3339 timestamp with nanoseconds (``2026-11-29T12:00:00.123456789Z``)."""
    from datetime import datetime

    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    body = stamp[:-1]
    whole, _, fraction = body.partition(".")
    try:
        base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return base.timestamp() + (float("0." + fraction) if fraction.isdigit() else 0.0)


def _split_reference(name: str) -> tuple[str, str]:
    """Split ``repo[:tag]`` without mistaking a registry port for a tag."""
    if "@" in name:
        return name, ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
        return repository, tag
    return name, "latest"
