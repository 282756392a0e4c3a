"""A node of the cluster as another node (or this one) knows it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class NodeLifecycle(enum.Enum):
    """OpenFog node lifecycle phases; only OPERATE takes new deployments."""

    COMMISSION = "COMMISSION"
    PROVISION = "PROVISION"
    OPERATE = "OPERATE"
    RECOVER = "RECOVER"
    DECOMMISSION = "DECOMMISSION"


class NodeReachability(enum.Enum):
    """Whether discovery currently sees the node."""

    REACHABLE = "REACHABLE"
    UNREACHABLE = "UNREACHABLE"


#: The ZeroMQ ports a node uses unless its discovery metadata says otherwise.
DEFAULT_PORTS: dict[str, int] = {
    "api": 5023,
    "capabilities_replier": 5091,
    "deploy_image_replier": 5092,
    "image_status_replier": 5093,
    "image_terminate_replier": 5094,
    "image_logs_replier": 5095,
    "services_replier": 5096,
    "image_claims_replier": 5097,
}


@dataclass
class Node:
    """Discovery metadata of one node."""

    ip: str
    id: str | None = None
    name: str | None = None
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    state: NodeReachability = NodeReachability.REACHABLE
    lifecycle: NodeLifecycle = NodeLifecycle.OPERATE
    version: str | None = None
    last_seen: float = 0.0
    capabilities: list[dict[str, Any]] = field(default_factory=list)
    load: float | None = None
    #: How many images the node runs, as its last presence said (``None``: not told).
    images: int | None = None
    #: The node's ZeroMQ CURVE public key (Z85) in a secure cell, and the cell CA's
    #: signature over it as its presence carried it (not part of the JSON shape).
    curve_key: str | None = None
    curve_signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /v1/nodes``."""
        return {
            "ip": self.ip,
            "id": self.id,
            "name": self.name,
            "ports": dict(self.ports),
            "state": self.state.value,
            "lifecycle": self.lifecycle.value,
            "version": self.version,
            "last_seen": self.last_seen,
            "capabilities": list(self.capabilities),
            "load": self.load,
            "images": self.images,
            "curve_key": self.curve_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        """Inverse of :meth:`to_dict`."""
        ports = dict(DEFAULT_PORTS)
        ports.update({k: int(v) for k, v in (data.get("ports") or {}).items()})
        return cls(
            ip=str(data["ip"]),
            id=data.get("id"),
            name=data.get("name"),
            ports=ports,
            state=NodeReachability(data.get("state") or NodeReachability.REACHABLE.value),
            lifecycle=NodeLifecycle(data.get("lifecycle") or NodeLifecycle.OPERATE.value),
            version=data.get("version"),
            last_seen=float(data.get("last_seen") or 0.0),
            capabilities=list(data.get("capabilities") or []),
            load=data.get("load"),
            images=data.get("images"),
            curve_key=data.get("curve_key"),
        )
