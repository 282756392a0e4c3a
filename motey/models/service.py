"""A service: a named set of images deployed from one blueprint."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from motey.models.image import Image, ImageState


class ServiceState(enum.Enum):
    """The MANO-style service lifecycle of the thesis (chapter 5.4.3)."""

    INITIAL = "INITIAL"
    INSTANTIATING = "INSTANTIATING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    @property
    def is_final(self) -> bool:
        """Whether nothing of the service should still be running in this state."""
        return self in (ServiceState.TERMINATED,)


@dataclass
class Service:
    """A deployed blueprint with its images and its lifecycle state."""

    id: str
    service_name: str
    images: list[Image] = field(default_factory=list)
    node_type: str | None = None
    state: ServiceState = ServiceState.INITIAL
    state_message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The ``Idempotency-Key`` of the POST that created it, stored with the service so a
    #: retry finds it even if the node stopped right after storing it.
    idempotency_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the design (``name`` mirrors ``service_name``)."""
        return {
            "id": self.id,
            "service_name": self.service_name,
            "name": self.service_name,
            "node_type": self.node_type,
            "state": self.state.value,
            "state_message": self.state_message,
            "images": [image.to_dict() for image in self.images],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "history": list(self.history),
            "idempotency_key": self.idempotency_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Service:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=str(data["id"]),
            service_name=str(data.get("service_name") or data.get("name") or ""),
            images=[Image.from_dict(i) for i in data.get("images") or []],
            node_type=data.get("node_type"),
            state=ServiceState(data.get("state") or ServiceState.INITIAL.value),
            state_message=str(data.get("state_message") or ""),
            created_at=float(data.get("created_at") or 0.0),
            updated_at=float(data.get("updated_at") or 0.0),
            history=list(data.get("history") or []),
            idempotency_key=data.get("idempotency_key") or None,
        )


def service_state_from_images(states: list[ImageState]) -> ServiceState:
    """Map the states of a service's images to the service's state.

    One image in ERROR puts the service in ERROR; the service runs only when every image
    runs and is TERMINATED only when every image is. An image that ended while others
    still run is an error of the service (the original marked the whole service
    TERMINATED and ignored the first image's state). Otherwise the least advanced image
    decides.
    """
    if not states or ImageState.ERROR in states:
        return ServiceState.ERROR
    if all(s is ImageState.TERMINATED for s in states):
        return ServiceState.TERMINATED
    if ImageState.TERMINATED in states:
        return ServiceState.ERROR
    if ImageState.STOPPING in states:
        return ServiceState.STOPPING
    if ImageState.INITIAL in states or ImageState.INSTANTIATING in states:
        return ServiceState.INSTANTIATING
    return ServiceState.RUNNING
