"""Recovery step: after a (re)start, reconcile the record with the engines.

Interrupted jobs resume once the node operates; containers this node owns that no
service records are removed as orphans — but only when the services database loaded
cleanly (after a restore, or with no database, unknown containers are kept).
"""

from __future__ import annotations

from collections.abc import Callable

import logbook

from motey.errors import MoteyError
from motey.models.image import ImageState
from motey.models.node import NodeLifecycle
from motey.models.service import ServiceState
from motey.node.identity import NodeIdentity
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.jobs import JobRunner

log = logbook.Logger(__name__)

Job = Callable[[str], None]


class Recovery:
    """Start-up reconciliation and the jobs it defers until the node operates."""

    def __init__(
        self,
        book: ServiceBook,
        jobs: JobRunner,
        executor: ImageExecutor,
        identity: NodeIdentity,
        deploy: Job,
        terminate: Job,
    ) -> None:
        self._book = book
        self._jobs = jobs
        self._executor = executor
        self._identity = identity
        self._deploy = deploy
        self._terminate = terminate
        self._deferred: list[tuple[str, Job]] = []

    def reconcile(self) -> None:
        """Resume interrupted jobs (once operating) and remove orphaned instances."""
        services = self._book.all()
        live_images: set[str] = set()
        for service in services:
            if service.state is ServiceState.TERMINATED:
                continue
            for image in service.images:
                if image.state is not ImageState.TERMINATED:
                    live_images.add(image.id)
        try:
            instances = self._executor.list_instances()
        except MoteyError as exc:
            log.error("cannot list instances for recovery: {}", exc.message)
            instances = {}
        # Only a database that loaded as written may call a container nobody records an
        # orphan; after a restore (or with no database) unknown containers are kept.
        health = self._book.health()
        for engine, found in instances.items():
            for info in found:
                owner = info.labels.get("motey.owner_id")
                if owner != self._identity.id or info.image_id in live_images:
                    continue
                if not health.clean:
                    log.warning(
                        "keeping {} instance {} (image {}, service {}) that no service records: {}",
                        engine,
                        info.instance_id[:12],
                        info.image_id,
                        info.service_id,
                        health.message,
                    )
                    continue
                log.warning(
                    "removing orphaned {} instance {} (image {}, service {})",
                    engine,
                    info.instance_id[:12],
                    info.image_id,
                    info.service_id,
                )
                try:
                    self._executor.remove_instance(engine, info.image_id or "")
                except MoteyError as exc:
                    log.error("could not remove orphan {}: {}", info.instance_id[:12], exc.message)
        resume: list[tuple[str, Job]] = []
        for service in services:
            if service.state in (ServiceState.INITIAL, ServiceState.INSTANTIATING):
                log.info("will resume deployment of service {}", service.id)
                resume.append((service.id, self._deploy))
            elif service.state is ServiceState.STOPPING:
                log.info("will resume termination of service {}", service.id)
                self._jobs.cancelled.add(service.id)
                resume.append((service.id, self._terminate))
        # Deployments are refused until the node operates (its other components, e.g.
        # discovery, start after the orchestrator), so resumed jobs wait for OPERATE.
        for service_id, _job in resume:
            self._jobs.mark_pending(service_id, +1)
        self._deferred = resume
        self.on_lifecycle(self._identity.lifecycle)

    def on_lifecycle(self, phase: NodeLifecycle) -> None:
        """Start the jobs deferred at start-up once the node operates."""
        if phase is not NodeLifecycle.OPERATE or not self._deferred:
            return
        jobs, self._deferred = self._deferred, []
        for service_id, job in jobs:
            self._jobs.schedule(service_id, job)
            self._jobs.mark_pending(service_id, -1)
