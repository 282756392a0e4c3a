"""Reschedule step (owner side): move images off a node that stays unreachable.

A node is unreachable when discovery has no presence of it **and** it does not answer a
direct request; a dead broker alone (presence stale, requests answered) moves nothing.
Once both have held for ``reschedule_after`` seconds, the owner places the node's images
elsewhere. The old copies cannot be stopped (the node does not answer); the node stops
them itself when it comes back and asks (see :mod:`motey.orchestrator.fencing`), and an
``on_disconnect: stop`` image is gone before the move (``stop_after_disconnect``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import logbook

from motey.models.image import ImageState
from motey.models.node import Node, NodeReachability
from motey.models.service import Service
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.follow import ImageMover

log = logbook.Logger(__name__)


class Rescheduler:
    """A watcher step: tracks unreachable nodes and moves their images after a while."""

    def __init__(
        self,
        book: ServiceBook,
        gateway: ClusterGateway,
        mover: ImageMover,
        reschedule_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._gateway = gateway
        self._mover = mover
        self._after = reschedule_after
        self._clock = clock
        self._down_since: dict[str, float] = {}

    def is_down(self, node: Node) -> bool:
        """No presence and no answer to the last direct request."""
        known = self._gateway.peer(node.id, node.ip)
        if known is not None and known.state is NodeReachability.REACHABLE:
            return False
        return self._gateway.health.silent_for(node) is not None

    def down_for(self, node: Node) -> float:
        """Seconds ``node`` has been seen down (0 when it is not)."""
        key = node.id or node.ip
        if not self.is_down(node):
            self._down_since.pop(key, None)
            return 0.0
        return self._clock() - self._down_since.setdefault(key, self._clock())

    def __call__(self, service: Service) -> None:
        for image in service.images:
            if image.awaiting_placement or image.state is ImageState.TERMINATED:
                continue
            if not (image.node or image.node_id):
                continue
            node = self._gateway.node_for(image)
            if self._gateway.is_local(node):
                continue
            down = self.down_for(node)
            if down < self._after:
                continue
            reason = f"node {node.ip} unreachable for {down:.0f} s (no presence, no answer)"
            log.warning("service {}: image {}: {}; moving it", service.id, image.id, reason)
            self._mover.move(
                service, image, exclude={node.id or "", node.ip}, why=reason, stop_old=False
            )
