"""Move step: carry out the moves :mod:`relocation` decides, and place waiting images.

Two kinds of image move here: one whose node lost a capability it requires (the old copy
is stopped first, so two copies never run), and one that waits for a node (at deployment
nothing qualified, or its hardware went away). A waiting image is placed as soon as a
node qualifies; ``placement_deadline`` (seconds, none by default) ends the wait in ERROR.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import logbook

from motey.errors import MoteyError
from motey.models.image import Image, ImageState
from motey.models.node import Node
from motey.models.service import Service, ServiceState
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.deploy import DeployStep, wait_for_placement
from motey.orchestrator.placement import Placement, PlacementError
from motey.orchestrator.relocation import pending_moves

log = logbook.Logger(__name__)


class ImageMover:
    """Moves images of one service (called by the watcher under the service's lock)."""

    def __init__(
        self,
        book: ServiceBook,
        gateway: ClusterGateway,
        placement: Placement,
        deploy: DeployStep,
        placement_deadline: float | None = None,
    ) -> None:
        self._book = book
        self._gateway = gateway
        self._placement = placement
        self._deploy = deploy
        self._deadline = placement_deadline if placement_deadline else None

    def follow(self, service: Service) -> None:
        """Move images whose node lost a required capability; place waiting ones."""
        for move in pending_moves(service.images, self._gateway):
            image = move.image
            if image.awaiting_placement:
                if self._past_deadline(service, image):
                    return
                self.place_waiting(service, image)
                continue
            log.warning("service {}: image {}: {}", service.id, image.id, move.reason)
            self._book.record(service, f"image {image.name!r}: {move.reason}")
            self.move(service, image, exclude={image.node_id or image.node or ""}, why=move.reason)

    def move(
        self, service: Service, image: Image, exclude: set[str], why: str, stop_old: bool = True
    ) -> bool:
        """Start ``image`` on another node; the old copy is stopped first when ``stop_old``.

        Without ``stop_old`` (its node does not answer) the old copy is left to the node,
        which stops it when it comes back; with no other node the image stays where it is.
        """
        old = image.node
        try:
            target = self._placement.place(image, exclude=exclude)
        except PlacementError as exc:
            if not stop_old:
                message = f"image {image.name!r} cannot move ({why}): {exc.message}"
                if not service.history or service.history[-1]["message"] != message:
                    self._book.record(service, message)
                return False
            self.stop_copy(service, image)
            wait_for_placement(image, exc)
            image.state = ImageState.ERROR  # it ran and no longer does: the service is hurt
            self._book.record(service, f"image {image.name!r} is waiting: {exc.message}")
            return False
        if stop_old:
            self.stop_copy(service, image)
        else:
            image.node = image.node_id = image.instance_id = None
        return self._start_on(
            service, image, target, lambda ip: f"moved from {old} to {ip} ({why})", exclude
        )

    def place_waiting(self, service: Service, image: Image) -> bool:
        """Try to place an image that waits for a node; keeps it waiting if none fits."""
        try:
            target = self._placement.place(image)
        except PlacementError as exc:
            state = image.state
            wait_for_placement(image, exc)
            image.state = state  # INSTANTIATING at deployment, ERROR after a lost capability
            return False
        return self._start_on(service, image, target, lambda ip: f"placed on {ip}")

    def _start_on(
        self,
        service: Service,
        image: Image,
        target: Node,
        event: Callable[[str], str],
        exclude: set[str] | None = None,
    ) -> bool:
        """Start ``image`` on ``target`` (or, if it declines, on the next node that fits
        and is not in ``exclude``); ``event(ip)`` is the history line once it runs."""
        image.node, image.node_id = target.ip, target.id
        image.awaiting_placement, image.awaiting_since = False, None
        try:
            self._deploy.start_image(service, image, exclude=exclude)
        except MoteyError as exc:
            log.error("could not start image {} on {}: {}", image.id, target.ip, exc.message)
            self.stop_copy(service, image)
            image.awaiting_placement = True
            image.awaiting_since = time.time()
            image.state = ImageState.ERROR
            image.state_message = f"waiting: start on {target.ip} failed: {exc.message}"
            return False
        self._book.record(service, f"image {image.name!r} {event(image.node or target.ip)}")
        return True

    def _past_deadline(self, service: Service, image: Image) -> bool:
        """End the wait in ERROR once ``placement_deadline`` has passed; True if it did."""
        if self._deadline is None or image.awaiting_since is None:
            return False
        waited = time.time() - image.awaiting_since
        if waited < self._deadline:
            return False
        reason = (
            f"image {image.name!r}: no node meets its requirements within "
            f"{self._deadline:g} s ({image.state_message.removeprefix('waiting for a node: ')})"
        )
        image.awaiting_placement = False
        image.state = ImageState.ERROR
        image.state_message = reason
        if service.state in (ServiceState.INITIAL, ServiceState.INSTANTIATING):
            self._deploy.rollback(service, reason)
        else:
            self._book.record(service, reason)
        return True

    def stop_copy(self, service: Service, image: Image) -> None:
        """Stop an image where it runs now and forget its placement."""
        if image.node or image.node_id:
            try:
                self._gateway.terminate(image)
            except MoteyError as exc:
                log.error("could not stop image {} on {}: {}", image.id, image.node, exc.message)
        image.node = image.node_id = image.instance_id = None
        self._book.save(service)
