"""What a node does with images it is asked to run, by itself or by a peer."""

from __future__ import annotations

import os
from typing import Any

import logbook

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.requirements import unmet
from motey.errors import UnprocessableError
from motey.models.image import Image
from motey.node.identity import NodeIdentity
from motey.val.manager import VALManager
from motey.val.plugin import InstanceInfo, InstanceStatus, LogChunk

log = logbook.Logger(__name__)


class ImageExecutor:
    """Runs, inspects and stops images on this node's engines.

    The same object serves local placements and the ZeroMQ repliers, so a peer's deploy
    request is handled exactly like a local one (lifecycle check included).
    """

    def __init__(
        self, identity: NodeIdentity, val_manager: VALManager, capability_engine: CapabilityEngine
    ) -> None:
        self._identity = identity
        self._val = val_manager
        self._capabilities = capability_engine

    @property
    def node_id(self) -> str:
        return self._identity.id

    def describe(self) -> dict[str, Any]:
        """Capabilities plus what placement needs to choose between nodes."""
        try:
            load = os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            load = 0.0
        return {
            "node_id": self._identity.id,
            "name": self._identity.name,
            "ip": self._identity.ip,
            "lifecycle": self._identity.lifecycle.value,
            "load": round(load, 4),
            "capabilities": self._capabilities.all(),
        }

    def capabilities(self) -> list[dict[str, Any]]:
        return self._capabilities.all()

    def deploy(self, image: Image) -> str:
        """Start an image here; refuses when this node is not in OPERATE."""
        self._identity.require_operational()
        return self._val.instantiate(image)

    def check_peer_request(self, image: Image) -> None:
        """Check an image a peer sent as strictly as a local blueprint before running it.

        A peer decided on stale information (or is not a Motey at all), so the phase,
        the engine, its parameters and the requirements are checked again here.
        """
        self._identity.require_operational()
        self._val.validate(image, "image")
        missing = unmet(image.capabilities, self._capabilities.all())
        if missing:
            raise UnprocessableError(
                f"node {self._identity.name} does not meet {', '.join(missing)}",
                field="capabilities",
            )

    def status(self, image: Image) -> InstanceStatus:
        return self._val.status(image)

    def terminate(self, image: Image) -> bool:
        return self._val.terminate(image)

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
        return self._val.terminate(Image(id=image_id, name="", engine=engine))
