"""Placement follows the hardware: which running images must move, and why.

When a capability an image requires disappears from the node that runs it (a ZigBee
dongle unplugged), the image has to move to a node that meets its requirements again;
when none does, it waits, and moves as soon as one appears. This module only decides;
the orchestrator carries the moves out under the service's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from motey.capabilityengine.requirements import unmet
from motey.models.image import Image, ImageState
from motey.orchestrator.cluster import ClusterGateway


@dataclass(frozen=True)
class Move:
    """One image that must be (re)placed, with the reason to record in its history."""

    image: Image
    reason: str


def pending_moves(images: list[Image], gateway: ClusterGateway) -> list[Move]:
    """Images whose node no longer meets their requirements, or that wait for a node."""
    moves: list[Move] = []
    for image in images:
        if image.awaiting_placement:
            moves.append(Move(image, "waiting for a node that meets its requirements"))
            continue
        if not image.capabilities:
            continue
        if image.state is not ImageState.RUNNING or not (image.node or image.node_id):
            continue
        capabilities = gateway.known_capabilities(image)
        if capabilities is None:
            continue  # peer unknown or unreachable: its capabilities cannot be judged
        missing = unmet(image.capabilities, capabilities)
        if missing:
            moves.append(Move(image, f"node {image.node} no longer meets {', '.join(missing)}"))
    return moves
