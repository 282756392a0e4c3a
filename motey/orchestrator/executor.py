"""What a node does with images it is asked to run, by itself or by a peer."""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
from collections.abc import Callable
from typing import Any

import logbook

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.requirements import parse_requirement, unmet
from motey.errors import MoteyError, UnprocessableError
from motey.models.image import Image
from motey.node.identity import NodeIdentity
from motey.orchestrator.policy import BlueprintPolicy
from motey.val.manager import VALManager
from motey.val.plugin import InstanceInfo, InstanceStatus, LogChunk
from motey.val.states import InstanceStates

log = logbook.Logger(__name__)


class ImageExecutor:
    """Runs, inspects and stops images on this node's engines.

    The same object serves local placements and the ZeroMQ repliers, so a peer's deploy
    request is handled exactly like a local one (lifecycle check included).
    """

    def __init__(
        self,
        identity: NodeIdentity,
        val_manager: VALManager,
        capability_engine: CapabilityEngine,
        policy: BlueprintPolicy | None = None,
        device_paths: Callable[[], dict[str, list[str]]] | None = None,
        states: InstanceStates | None = None,
    ) -> None:
        """``states`` answers status questions from a cache the engine's events keep
        current (docs/scale.md, "Node-to-node requests"); without it every status asks
        the engine."""
        self._identity = identity
        self._val = val_manager
        self._capabilities = capability_engine
        self._policy = policy or BlueprintPolicy()
        self._device_paths = device_paths
        self._states = states
        #: Ids of the images this process started and has not terminated: what placement
        #: and ``GET /v1/nodes`` count as this node's images (docs/scale.md).
        self._images: set[str] = set()
        #: Moves with every change of the capability set, so a capability reply built
        #: from it can be kept until then (:meth:`description_key`).
        self._capability_generation = 0
        capability_engine.subscribe(self._capabilities_changed)
        #: Moves whenever this node starts or removes an instance: a reader of the
        #: instance list (the fence) lists again only then (docs/scale.md).
        self.generation = 0

    @property
    def node_id(self) -> str:
        return self._identity.id

    def _capabilities_changed(self, _capabilities: list[dict[str, Any]]) -> None:
        self._capability_generation += 1

    def description_key(self) -> tuple[Any, ...]:
        """Changes whenever :meth:`describe` would answer differently: the capability
        set, the lifecycle phase, the load (as rounded there) or the image count.
        Cheap (no capability list is built), so a replier can keep its encoded answer."""
        identity = self._identity
        return (
            self._capability_generation,
            identity.lifecycle,
            identity.name,
            identity.ip,
            _load(),
            len(self._images),
        )

    def describe(self) -> dict[str, Any]:
        """Capabilities plus what placement needs to choose between nodes."""
        return {
            "node_id": self._identity.id,
            "name": self._identity.name,
            "ip": self._identity.ip,
            "lifecycle": self._identity.lifecycle.value,
            "load": _load(),
            "images": len(self._images),
            "capabilities": self._capabilities.all(),
        }

    def image_count(self) -> int:
        """How many images this node started and still runs (as far as it knows)."""
        return len(self._images)

    def capabilities(self) -> list[dict[str, Any]]:
        return self._capabilities.all()

    def deploy(self, image: Image) -> str:
        """Start an image here; refuses outside OPERATE or against this node's policy.

        The devices behind the device capabilities the image requires are granted to
        its container here, on the node that runs it, so a moved image gets the paths
        of its new node and the stored image never carries a path.
        """
        self._identity.require_operational()
        self._policy.check(image, "image", f"node {self._identity.name}")
        try:
            instance = self._val.instantiate(self.with_device_grants(image))
        finally:
            self._forget_state(image.id, image.engine)
            self.generation += 1
        self._images.add(image.id)
        return instance

    def with_device_grants(self, image: Image) -> Image:
        """``image`` with the device nodes of its required device capabilities added."""
        paths = self.granted_devices(image)
        if not paths or image.engine != "docker":
            return image
        params = dict(image.parameters)
        own = [str(d) for d in params.get("devices") or []]
        params["devices"] = own + [f"{p}:{p}:rwm" for p in paths if f"{p}:{p}:rwm" not in own]
        return dataclasses.replace(image, parameters=params)

    def granted_devices(self, image: Image) -> list[str]:
        """Device nodes (character or block) matched by rules the image requires."""
        if self._device_paths is None:
            return []
        found = self._device_paths()
        granted: list[str] = []
        for text in image.capabilities:
            try:
                requirement = parse_requirement(text)
            except MoteyError:
                continue
            if requirement.negated:
                continue
            for path in found.get(requirement.name, []):
                if _is_device(path) and path not in granted:
                    granted.append(path)
        if granted:
            log.info("granting image {} the devices {}", image.id, ", ".join(granted))
        return granted

    def check_peer_request(self, image: Image) -> None:
        """Check an image a peer sent as strictly as a local blueprint before running it.

        A peer decided on stale information (or is not a Motey at all), so the phase,
        the engine, its parameters and the requirements are checked again here.
        """
        self._identity.require_operational()
        self._val.validate(image, "image")
        self._policy.check(image, "image", f"node {self._identity.name}")
        missing = unmet(image.capabilities, self._capabilities.all())
        if missing:
            raise UnprocessableError(
                f"node {self._identity.name} does not meet {', '.join(missing)}",
                field="capabilities",
            )

    def status(self, image: Image) -> InstanceStatus:
        return self.status_of(image.id, image.engine)

    def status_of(self, image_id: str, engine: str) -> InstanceStatus:
        """The state of an image's instance, from the state cache when there is one."""
        if self._states is not None:
            return self._states.status(image_id, engine)
        return self._val.status(Image(id=image_id, name="", engine=engine))

    def terminate(self, image: Image) -> bool:
        try:
            removed = self._val.terminate(image)
        finally:
            self._forget_state(image.id, image.engine)
            self.generation += 1
        self._images.discard(image.id)
        return removed

    def _forget_state(self, image_id: str, engine: str) -> None:
        """This node changed the instance itself: its next status asks the engine, even
        before the engine's event about the change has arrived."""
        if self._states is not None:
            self._states.forget(image_id, engine)

    def logs(self, image: Image, tail: int | None = None, since: float | None = None) -> LogChunk:
        return self._val.logs(image, tail=tail, since=since)

    def ensure_image(self, image: Image) -> None:
        self._val.ensure_image(image)

    def validate(self, image: Image, field: str) -> None:
        """Check an image's engine and parameters (``field`` names it in errors)."""
        self._val.validate(image, field)

    def list_instances(self) -> dict[str, list[InstanceInfo]]:
        """Every instance this node started, by engine."""
        return self._val.list_instances()

    def remove_instance(self, engine: str, image_id: str) -> bool:
        """Stop and remove an instance known only by its labels (an orphan, a fenced copy)."""
        try:
            return self._val.terminate(Image(id=image_id, name="", engine=engine))
        finally:
            self._forget_state(image_id, engine)
            self.generation += 1


@functools.cache
def _cores() -> int:
    """The machine's core count; asked once (``os.cpu_count`` costs ~15 µs a call)."""
    return os.cpu_count() or 1


def _load() -> float:
    """This machine's 1-minute load average per core, as peers are told it."""
    try:
        return round(os.getloadavg()[0] / _cores(), 4)
    except OSError:
        return 0.0


def _is_device(path: str) -> bool:
    """Only device nodes are handed to a container, never files or folders a glob hit."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
