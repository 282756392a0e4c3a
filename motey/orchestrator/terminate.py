"""Terminate step: stop every image of a service side by side, then record the outcome."""

from __future__ import annotations

import logbook

from motey.errors import MoteyError
from motey.models.image import Image, ImageState
from motey.models.service import ServiceState
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.jobs import JobRunner

log = logbook.Logger(__name__)


class TerminateStep:
    """The terminate job of one service."""

    def __init__(self, book: ServiceBook, jobs: JobRunner, gateway: ClusterGateway) -> None:
        self._book = book
        self._jobs = jobs
        self._gateway = gateway

    def __call__(self, service_id: str) -> None:
        with self._book.lock(service_id):
            service = self._book.get(service_id)
            if service is None or service.state is ServiceState.TERMINATED:
                self._jobs.cancelled.discard(service_id)
                return
            if service.state is not ServiceState.STOPPING:
                self._book.set_state(service, ServiceState.STOPPING, "termination requested")

            def stop(image: Image) -> str | None:
                if not (image.node or image.node_id):
                    image.state = ImageState.TERMINATED
                    image.awaiting_placement = False
                    return None
                try:
                    self._gateway.terminate(image)
                except MoteyError as exc:
                    image.state_message = f"termination failed: {exc.message}"
                    return f"image {image.name!r} on {image.node}: {exc.message}"
                image.state = ImageState.TERMINATED
                image.state_message = ""
                image.instance_id = None
                return None

            outcomes = self._jobs.each(stop, service.images)
            failures = [
                o if isinstance(o, str) else f"{type(o).__name__}: {o}"
                for o in outcomes
                if o is not None
            ]
            if failures and self._jobs.stopping.is_set():
                # Paused, not failed: the service stays STOPPING and the job resumes.
                self._book.record(service, "termination paused: this node is stopping")
                return
            self._jobs.cancelled.discard(service_id)
            if failures:
                self._book.set_state(service, ServiceState.ERROR, "; ".join(failures))
            else:
                self._book.set_state(service, ServiceState.TERMINATED, "terminated on request")
