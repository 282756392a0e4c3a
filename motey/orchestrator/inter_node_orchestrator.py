"""The InterNodeOrchestrator: a small facade over one module per lifecycle step.

Requests only validate and store; the steps run in worker threads:

* :mod:`~motey.orchestrator.deploy` — place, start images side by side, roll back, pause
* :mod:`~motey.orchestrator.terminate` — stop images side by side
* :mod:`~motey.orchestrator.watch` — keep states live, run the movers each round
* :mod:`~motey.orchestrator.follow` — follow the hardware, place waiting images
* :mod:`~motey.orchestrator.reschedule` — move images off a node that stays unreachable
* :mod:`~motey.orchestrator.recovery` — reconcile after a (re)start, resume jobs
* :mod:`~motey.orchestrator.fencing` — (node side) stop copies that were moved meanwhile
* :mod:`~motey.orchestrator.book` — locks, state changes and history
* :mod:`~motey.orchestrator.jobs` — the worker pools and the stop budget

The engines are reached only through the :class:`ClusterGateway` (peers) and the
:class:`ImageExecutor` (this node), never through the VAL directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import logbook

from motey.capabilityengine.requirements import unmet
from motey.errors import MoteyError, NotFoundError
from motey.models.image import ImageState
from motey.models.service import Service, ServiceState
from motey.node.identity import NodeIdentity
from motey.orchestrator.blueprint import load_blueprint, service_from_blueprint
from motey.orchestrator.book import ServiceBook
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.compose import compose_to_blueprint
from motey.orchestrator.deploy import DeployStep
from motey.orchestrator.executor import ImageExecutor
from motey.orchestrator.follow import ImageMover
from motey.orchestrator.jobs import JobRunner
from motey.orchestrator.placement import Placement
from motey.orchestrator.policy import BlueprintPolicy
from motey.orchestrator.recovery import Recovery
from motey.orchestrator.reschedule import Rescheduler
from motey.orchestrator.terminate import TerminateStep
from motey.orchestrator.watch import Watcher
from motey.repositories.service_repository import ServiceRepository

log = logbook.Logger(__name__)


class InterNodeOrchestrator:
    """Deploys, watches and terminates services across the cluster."""

    #: Seconds :meth:`stop` may take (jobs pause at their next step); motey/lifecycle.py.
    STOP_WAIT = 5.0

    def __init__(
        self,
        services: ServiceRepository,
        executor: ImageExecutor,
        gateway: ClusterGateway,
        placement: Placement,
        identity: NodeIdentity,
        watch_interval: float = 2.0,
        workers: int = 4,
        subscribe_capabilities: Callable[[Callable[[Any], None]], None] | None = None,
        placement_deadline: float | None = None,
        reschedule_after: float = 30.0,
        policy: BlueprintPolicy | None = None,
    ) -> None:
        self._executor = executor
        self._policy = policy or BlueprintPolicy()
        self._gateway = gateway
        self._identity = identity
        self.book = ServiceBook(services)
        self.jobs = JobRunner(workers)
        self.deploy = DeployStep(self.book, self.jobs, gateway, placement, identity)
        self.terminate_step = TerminateStep(self.book, self.jobs, gateway)
        self.mover = ImageMover(self.book, gateway, placement, self.deploy, placement_deadline)
        self.rescheduler = Rescheduler(self.book, gateway, self.mover, reschedule_after)
        self.recovery = Recovery(
            self.book, self.jobs, executor, identity, self.deploy, self.terminate_step
        )
        self.watcher = Watcher(
            self.book,
            self.jobs,
            gateway,
            [self.mover.follow, self.rescheduler],
            interval=watch_interval,
            before_round=gateway.sweep,
        )
        self._lifecycle_subscribed = False
        self._started = False
        if subscribe_capabilities is not None:
            # A local capability change is checked at once, not at the next round.
            subscribe_capabilities(lambda _caps: self.watcher.wake.set())

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Reconcile with the engines, then start the workers and the watcher."""
        if self._started:
            return
        self._started = True
        self._gateway.resume()
        self.jobs.start()
        if not self._lifecycle_subscribed:
            self._identity.subscribe(self.recovery.on_lifecycle)
            self._lifecycle_subscribed = True
        self.recovery.reconcile()
        self.watcher.start()

    def stop(self) -> None:
        """Pause jobs (they resume after a restart) within ``STOP_WAIT``; idempotent.

        In-flight requests to peers are cancelled, so a job waiting for a remote deploy
        pauses at once instead of holding the stop for the action timeout.
        """
        if not self._started:
            return
        self._started = False
        self.jobs.stopping.set()
        self._gateway.cancel()
        self.watcher.stop(timeout=1.0)
        self.jobs.stop(timeout=self.STOP_WAIT - 1.5)

    def subscribe(self, listener: Callable[[Service], None]) -> None:
        """Be called with a service after each stored change of its state."""
        self.book.subscribe(listener)

    def watch_once(self) -> None:
        """One watcher round now (tests, and callers that know something changed)."""
        self.watcher.watch_once()

    # -- queries -------------------------------------------------------------------
    def list_services(self) -> list[Service]:
        return self.book.all()

    def get_service(self, service_id: str) -> Service:
        return self.book.require(service_id)

    # -- commands ------------------------------------------------------------------
    def submit_compose(
        self, text: str, name: str | None = None, idempotency_key: str | None = None
    ) -> Service:
        """A Compose file instead of a blueprint (see :mod:`motey.orchestrator.compose`)."""
        return self.submit_blueprint(
            text, idempotency_key, loader=lambda t: compose_to_blueprint(t, name)
        )

    def submit_blueprint(
        self,
        text: str,
        idempotency_key: str | None = None,
        loader: Callable[[str], dict[str, Any]] = load_blueprint,
    ) -> Service:
        """Validate a YAML blueprint, store the service and start deploying it.

        Anything that makes the blueprint unusable (syntax, schema, engine, parameters,
        an image this node should run but cannot get) is raised here, before anything
        is stored. An image that no node can run now is no error: it waits for a node.
        """
        self._identity.require_operational()
        data = loader(text)
        service = service_from_blueprint(
            data, owner_id=self._identity.id, owner_ip=self._identity.ip
        )
        service.idempotency_key = idempotency_key  # stored with the service, in one write
        local_caps = self._executor.capabilities()
        for index, image in enumerate(service.images):
            self._executor.validate(image, f"images[{index}]")
            self._policy.check(image, f"images[{index}]", f"node {self._identity.name}")
        for index, image in enumerate(service.images):
            if not unmet(image.capabilities, local_caps):
                try:
                    self._executor.ensure_image(image)
                except MoteyError as exc:
                    exc.field = f"images[{index}].name"
                    raise
        self.book.add(service)
        log.info(
            "accepted service {} ({}) with {} image(s)",
            service.service_name,
            service.id,
            len(service.images),
        )
        self.jobs.schedule(service.id, self.deploy)
        return service

    def terminate(self, service_id: str) -> Service:
        """Ask for a service's termination; it stops asynchronously."""
        service = self.get_service(service_id)
        if service.state is ServiceState.TERMINATED:
            return service
        self.jobs.cancelled.add(service_id)
        lock = self.book.lock(service_id)
        if lock.acquire(blocking=False):
            try:
                service = self.get_service(service_id)
                if service.state is not ServiceState.TERMINATED:
                    self.book.set_state(service, ServiceState.STOPPING, "termination requested")
            finally:
                lock.release()
        self.jobs.schedule(service_id, self.terminate_step)
        return service

    def terminate_by_blueprint(self, text: str) -> list[Service]:
        """The original's ``DELETE /v1/service`` with a YAML body: terminate by name."""
        data = load_blueprint(text)
        matches = [
            s
            for s in self.book.find_by_name(data["service_name"])
            if s.state is not ServiceState.TERMINATED
        ]
        if not matches:
            raise NotFoundError(
                f"no active service named {data['service_name']!r}", field="service_name"
            )
        return [self.terminate(s.id) for s in matches]

    def answer_claims(self, node_id: str, image_ids: list[str]) -> tuple[list[str], list[str]]:
        """Which of ``image_ids`` the node ``node_id`` keeps running, and which it stops.

        It keeps an image this node still places on it; it stops one that was moved or
        terminated. An image this node does not know is stopped only when the services
        database loaded cleanly (else the record may simply be lost: keep it).
        """
        placed = {
            image.id: (service, image) for service in self.book.all() for image in service.images
        }
        trusted = self.book.health().clean
        keep: list[str] = []
        stop: list[str] = []
        for image_id in image_ids:
            found = placed.get(image_id)
            if found is None:
                (stop if trusted else keep).append(image_id)
                continue
            service, image = found
            runs_there = image.node_id == node_id and image.state is not ImageState.TERMINATED
            if runs_there and service.state is not ServiceState.TERMINATED:
                keep.append(image_id)
            else:
                stop.append(image_id)
        return keep, stop
