"""Watch step: keep stored services in step with their images, every ``watch_interval``.

Each round refreshes the images' states, lets the movers act (hardware, waiting images,
unreachable nodes) and writes a service once, and only when something changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import logbook

from motey.errors import CommunicationError, MoteyError, PeerSilent
from motey.models.image import ImageState
from motey.models.service import Service, ServiceState
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.jobs import JobRunner

log = logbook.Logger(__name__)

_WATCHED = (ServiceState.RUNNING, ServiceState.INSTANTIATING)

#: Something the watcher runs on a service each round (under the service's lock).
Step = Callable[[Service], None]


def is_watched(service: Service) -> bool:
    """Running services, and failed ones that may still recover.

    A failed service is watched while an image waits for a suitable node or still has an
    instance (a container that exited may be restarted, a node that was unreachable may
    return); one whose deployment was rolled back is final.
    """
    return service.state in _WATCHED or (
        service.state is ServiceState.ERROR
        and any(
            i.awaiting_placement or (i.instance_id and i.state is not ImageState.TERMINATED)
            for i in service.images
        )
    )


class Watcher:
    """The watcher thread and one round of it."""

    def __init__(
        self,
        book: ServiceBook,
        jobs: JobRunner,
        gateway: ClusterGateway,
        steps: list[Step],
        interval: float = 2.0,
        before_round: Callable[[], None] | None = None,
    ) -> None:
        self._book = book
        self._jobs = jobs
        self._gateway = gateway
        self._steps = steps
        self._interval = interval
        self._before_round = before_round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set to run a round now (a capability changed, a node joined).
        self.wake = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="motey-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.warning("service watcher still busy after {:g} s; not waiting", timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(self._interval)
            self.wake.clear()
            if self._stop.is_set():
                return
            try:
                self.watch_once()
            except Exception as exc:  # the watcher must survive any single failure
                log.exception("service watcher round failed: {}", exc)

    def watch_once(self) -> None:
        """Refresh watched services, run the movers, write each changed service once."""
        if self._before_round is not None:
            self._before_round()
        # Nodes that did not answer in this round are not asked again in it: a dead node
        # costs one request timeout per round, not one per image.
        silent: dict[str, str] = {}
        for service in self._book.all():
            if self._stop.is_set() or self._jobs.stopping.is_set():
                return
            if not is_watched(service) or self._jobs.is_pending(service.id):
                continue
            lock = self._book.lock(service.id)
            if not lock.acquire(blocking=False):
                continue
            try:
                current = self._book.get(service.id)
                if current is None or not is_watched(current):
                    continue
                before = current.to_dict()
                self.refresh_images(current, silent)
                for step in self._steps:
                    step(current)
                    if not is_watched(current):
                        break
                if is_watched(current):
                    self._book.refresh_state(current, persist=False)
                if current.to_dict() != before:  # one write per round, and only on change
                    self._book.save(current)
            finally:
                lock.release()

    def refresh_images(self, service: Service, silent: dict[str, str] | None = None) -> None:
        """Each placed image's state from its node; ``silent`` collects nodes that did
        not answer (by address, with the error) and is not asked again."""
        silent = {} if silent is None else silent
        for image in service.images:
            if not (image.node or image.node_id) or image.state is ImageState.TERMINATED:
                continue
            if image.node in silent:
                image.state = ImageState.ERROR
                image.state_message = f"node {image.node} unreachable: {silent[image.node]}"
                continue
            try:
                status = self._gateway.status(image)
            except CommunicationError as exc:
                if image.state is not ImageState.ERROR:
                    log.warning("image {} of service {}: {}", image.id, service.id, exc.message)
                if isinstance(exc, PeerSilent) and image.node:
                    silent[image.node] = exc.message
                image.state = ImageState.ERROR
                image.state_message = f"node {image.node} unreachable: {exc.message}"
                continue
            except MoteyError as exc:
                image.state_message = f"state unknown: {exc.message}"
                continue
            if status.state is not image.state or status.message != image.state_message:
                log.info(
                    "image {} of service {} is now {} {}",
                    image.id,
                    service.id,
                    status.state.value,
                    status.message,
                )
            if not status.exists and image.on_disconnect == "stop":
                # Its node stopped it while cut off from this owner (on_disconnect: stop)
                # and no other node took it over: place it again.
                self._book.record(
                    service,
                    f"image {image.name!r} was stopped on {image.node} while cut off from "
                    "its owner (on_disconnect: stop); placing it again",
                )
                image.node = image.node_id = image.instance_id = None
                image.awaiting_placement, image.awaiting_since = True, time.time()
                image.state = ImageState.ERROR
                image.state_message = "waiting for a node: stopped while cut off"
                continue
            image.state = status.state
            image.state_message = status.message
