"""Deploy step: place every image of a service, then start the placed ones side by side.

Rules, in the order they apply:

* An image no node can run **waits** (``awaiting_placement``, service INSTANTIATING,
  a message saying what it waits for); the watcher places it once a node qualifies.
* A node that declines an image (its ``[POLICY]`` refuses it, or a peer left OPERATE
  since placement asked it) is skipped: the image goes to the next node that qualifies.
* Any other failure (engine, parameters, image, every fitting node declined) rolls the
  whole service back: what was started is removed and the service is ERROR with the
  reason.
* A failure while this node is stopping is no failure: the job **pauses** (nothing is
  rolled back, the service stays INSTANTIATING) and resumes after the restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import logbook

from motey.errors import MoteyError, NodeNotOperational, PolicyError
from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle
from motey.models.service import Service, ServiceState
from motey.node.identity import NodeIdentity
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.jobs import JobRunner
from motey.orchestrator.placement import Placement, PlacementError

log = logbook.Logger(__name__)

#: Refusals after which an image is not offered to yet another node: each one costs a
#: survey of the peers, and a cell whose nodes all refuse should fail in seconds.
MAX_REFUSALS = 5

#: What a paused image says until the job resumes.
PAUSED = "paused: this node is stopping; the deployment resumes after its restart"


def wait_for_placement(image: Image, error: PlacementError) -> None:
    """Mark ``image`` as waiting for a node, saying what it waits for."""
    if not image.awaiting_placement or image.awaiting_since is None:
        image.awaiting_since = time.time()
    image.awaiting_placement = True
    image.node = image.node_id = image.instance_id = None
    image.state = ImageState.INSTANTIATING
    image.state_message = f"waiting for a node: {error.reason or error.message}"


class DeployStep:
    """The deploy job of one service."""

    def __init__(
        self,
        book: ServiceBook,
        jobs: JobRunner,
        gateway: ClusterGateway,
        placement: Placement,
        identity: NodeIdentity,
    ) -> None:
        self._book = book
        self._jobs = jobs
        self._gateway = gateway
        self._placement = placement
        self._identity = identity
        self.rollback: Callable[[Service, str], None] = self._rollback

    def shutting_down(self) -> bool:
        """Whether a failure now is the stop's doing, not the service's."""
        return (
            self._jobs.stopping.is_set() or self._identity.lifecycle is NodeLifecycle.DECOMMISSION
        )

    def __call__(self, service_id: str) -> None:
        with self._book.lock(service_id):
            service = self._book.get(service_id)
            if service is None or service.state not in (
                ServiceState.INITIAL,
                ServiceState.INSTANTIATING,
            ):
                return
            if service_id in self._jobs.cancelled:
                return
            # One write for the new state and every placement: each write rewrites the
            # services file, and a burst of deployments queues on its lock (docs/scale.md).
            self._book.set_state(
                service, ServiceState.INSTANTIATING, "deploying images", persist=False
            )
            if self._interrupted(service):
                self._book.save(service)
                return
            unplaced = [i for i in service.images if not (i.node or i.node_id)]
            # One round of capability requests for the images of the service.
            for image, node in zip(unplaced, self._placement.place_all(unplaced), strict=True):
                if isinstance(node, PlacementError):
                    log.info("service {}: image {} waits: {}", service.id, image.id, node.message)
                    wait_for_placement(image, node)
                    continue
                image.node, image.node_id = node.ip, node.id
                image.awaiting_placement, image.awaiting_since = False, None
            placed = [i for i in service.images if i.node or i.node_id]
            for image in placed:
                image.state, image.state_message = ImageState.INSTANTIATING, ""
            if any(i.awaiting_placement for i in service.images):
                # The service says what it waits for in the same write that shows its
                # images waiting (a reader saw waiting images under "deploying images").
                self._book.refresh_state(service, persist=False)
            # Stored before any image starts: an owner that restarts now still knows
            # where each image went (claims, recovery), and the job resumes from here.
            self._book.save(service)
            outcomes = self._jobs.each(
                lambda image: self.start_image(service, image, persist=False), placed
            )
            failures = [
                (image, outcome)
                for image, outcome in zip(placed, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            ]
            if failures and self.shutting_down():
                self.pause(service, [image for image, _ in failures])
                return
            if failures:
                image, first = failures[0]
                message = first.message if isinstance(first, MoteyError) else str(first)
                for failed, error in failures:
                    failed.state = ImageState.ERROR
                    failed.state_message = (
                        error.message if isinstance(error, MoteyError) else str(error)
                    )
                self.rollback(service, f"image {image.name!r}: {message}")
                return
            self._book.refresh_state(service, default_message="all images running")

    def _interrupted(self, service: Service) -> bool:
        if self._jobs.stopping.is_set():
            self.pause(service, [])
            return True
        if service.id in self._jobs.cancelled:
            log.info("deployment of service {} cancelled by its termination", service.id)
            return True
        return False

    def pause(self, service: Service, images: list[Image]) -> None:
        """Leave the service INSTANTIATING; its job runs again after the restart."""
        for image in images:
            image.state = ImageState.INSTANTIATING
            image.state_message = PAUSED
        log.info("deployment of service {} paused by the node's stop", service.id)
        self._book.record(service, "deployment paused: this node is stopping")

    def start_image(
        self,
        service: Service,
        image: Image,
        persist: bool = True,
        exclude: set[str] | None = None,
    ) -> None:
        """Start one placed image where it was placed; it is RUNNING once that returns.

        A node answers a deploy with the instance id only after its engine started the
        instance, so no status request follows (it cost a round trip and two engine
        calls per image); an instance that exits later is the watcher's to see.
        ``persist=False`` leaves the writes to the caller (the deploy step writes the
        service once before and once after all its images). A node that declines the
        image is skipped for the next that fits and is not in ``exclude`` (a move's old
        node); ``image.node`` says where it runs in the end.
        """
        node = self._gateway.node_for(image)
        image.state = ImageState.INSTANTIATING
        image.state_message = ""
        if persist:
            self._book.save(service)
        refused: set[str] = set(exclude or ())
        refusals: list[str] = []
        while True:
            log.info("deploying image {} ({}) on node {}", image.id, image.name, node.ip)
            try:
                instance_id = self._gateway.deploy(node, image)
            except MoteyError as exc:
                self._placement.release(node)
                if not self._refusal(node, exc):
                    raise
                refused.update(key for key in (node.id, node.ip) if key)
                refusals.append(exc.message)
                node = self._place_elsewhere(service, image, node, refused, refusals, exc)
                continue
            except BaseException:
                self._placement.release(node)
                raise
            self._placement.release(node)  # the peer now counts it itself
            break
        image.instance_id = instance_id
        image.state = ImageState.RUNNING
        image.state_message = ""
        if persist:
            self._book.save(service)

    def _refusal(self, node: Node, error: MoteyError) -> bool:
        """Whether ``error`` is ``node`` declining the image, so another node may take it.

        A policy refusal, or a peer that left OPERATE since it was asked. This node's
        own lifecycle refusal is not one: it means this node is stopping, and the job
        pauses instead (:meth:`pause`).
        """
        if self.shutting_down():
            return False
        if isinstance(error, PolicyError):
            return True
        return isinstance(error, NodeNotOperational) and not self._gateway.is_local(node)

    def _place_elsewhere(
        self,
        service: Service,
        image: Image,
        refused_by: Node,
        refused: set[str],
        refusals: list[str],
        error: MoteyError,
    ) -> Node:
        """The next node for an image that ``refused_by`` would not run; raises if none.

        Placement asks whether a node *can* run an image (capabilities, lifecycle), not
        whether its ``[POLICY]`` *lets* it: policies may differ between nodes, and only
        the node that runs an image decides. A refusal is therefore an answer about that
        node alone - the image goes to the next node that qualifies, never back to one
        that refused it, and fails only when every fitting node has refused (or after
        :data:`MAX_REFUSALS`, each refusal having cost a survey of the peers).
        """
        log.warning(
            "service {}: image {} refused by node {}: {}",
            service.id,
            image.id,
            refused_by.ip,
            error.message,
        )
        if len(refusals) >= MAX_REFUSALS:
            raise type(error)(
                f"{'; '.join(refusals)}; not tried further after {len(refusals)} refusals",
                field=error.field,
                details={"refusals": refusals},
            )
        try:
            target = self._placement.place(image, exclude=refused)
        except PlacementError as none:
            raise type(error)(
                # The refusers are not asked again, so the reason speaks of the others
                # only ("no node has zigbee" alone would deny that the refusers have it).
                f"{'; '.join(refusals)}; no other node takes it "
                f"(of the others: {none.reason or none.message})",
                field=error.field,
                details={"refusals": refusals},
            ) from None
        image.node, image.node_id = target.ip, target.id
        self._book.record(
            service,
            f"image {image.name!r} refused by node {refused_by.name or refused_by.ip} "
            f"({error.message}); placed on {target.ip} instead",
        )
        return target

    def _rollback(self, service: Service, reason: str) -> None:
        """Remove whatever a failed deployment started (side by side), then mark ERROR."""
        log.error("deployment of service {} failed: {}", service.id, reason)
        placed = [i for i in service.images if i.node or i.node_id]

        def remove(image: Image) -> None:
            try:
                self._gateway.terminate(image)
                image.instance_id = None
                if image.state is not ImageState.ERROR:
                    image.state = ImageState.TERMINATED
                    image.state_message = "removed after failed deployment"
            except MoteyError as exc:
                log.error("could not remove image {} after failure: {}", image.id, exc.message)
                image.state_message = f"{image.state_message}; cleanup failed: {exc.message}"

        self._jobs.each(remove, placed)
        for image in service.images:
            if image.awaiting_placement:
                image.awaiting_placement = False
                image.state = ImageState.TERMINATED
        self._book.set_state(service, ServiceState.ERROR, reason)
