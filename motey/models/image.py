"""An image of a service: one container to run on one node."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ImageState(enum.Enum):
    """Lifecycle of one image; each VAL plugin maps its engine's states onto these."""

    INITIAL = "INITIAL"
    INSTANTIATING = "INSTANTIATING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"


@dataclass
class Image:
    """One image entry of a blueprint, plus where and how it runs.

    ``node`` is the IP address of the node that runs it (the original's wire format);
    ``node_id`` is that node's stable id where known.
    """

    id: str
    name: str
    engine: str = "docker"
    parameters: dict[str, Any] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    node: str | None = None
    node_id: str | None = None
    state: ImageState = ImageState.INITIAL
    state_message: str = ""
    instance_id: str | None = None
    service_id: str | None = None
    owner_id: str | None = None
    #: The owner's address, so a node can ask it directly even without a node list.
    owner_ip: str | None = None
    #: Set while no node meets the image's requirements; the orchestrator keeps looking.
    awaiting_placement: bool = False
    #: Wall-clock time the image started waiting for a node (for placement_deadline).
    awaiting_since: float | None = None
    #: What the running node does while cut off from the owner: ``keep`` runs on,
    #: ``stop`` stops it after stop_after_disconnect (never two copies).
    on_disconnect: str = "keep"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used on REST, ZeroMQ and in the database."""
        return {
            "id": self.id,
            "name": self.name,
            "engine": self.engine,
            "parameters": self.parameters,
            "capabilities": list(self.capabilities),
            "node": self.node,
            "node_id": self.node_id,
            "state": self.state.value,
            "state_message": self.state_message,
            "instance_id": self.instance_id,
            "service_id": self.service_id,
            "owner_id": self.owner_id,
            "owner_ip": self.owner_ip,
            "awaiting_placement": self.awaiting_placement,
            "awaiting_since": self.awaiting_since,
            "on_disconnect": self.on_disconnect,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Image:
        """Inverse of :meth:`to_dict`; tolerant of the original's fewer fields."""
        state = data.get("state") or ImageState.INITIAL.value
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            engine=str(data.get("engine") or "docker"),
            parameters=dict(data.get("parameters") or {}),
            capabilities=list(data.get("capabilities") or []),
            node=data.get("node"),
            node_id=data.get("node_id"),
            state=ImageState(state),
            state_message=str(data.get("state_message") or ""),
            instance_id=data.get("instance_id"),
            service_id=data.get("service_id"),
            owner_id=data.get("owner_id"),
            owner_ip=data.get("owner_ip"),
            awaiting_placement=bool(data.get("awaiting_placement", False)),
            awaiting_since=data.get("awaiting_since"),
            on_disconnect=str(data.get("on_disconnect") or "keep"),
        )
