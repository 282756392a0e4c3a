"""The InterNodeOrchestrator: a service's whole life, from blueprint to termination.

Requests only validate and store; deployment, termination and watching run in worker
threads that this class owns. Every change to a stored service happens while holding
that service's lock, so a deployment, a termination and the watcher never overwrite
one another's writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import logbook

from motey.capabilityengine.requirements import unmet
from motey.errors import CommunicationError, MoteyError, NotFoundError
from motey.models.image import Image, ImageState
from motey.models.node import NodeLifecycle
from motey.models.service import Service, ServiceState, service_state_from_images
from motey.node.identity import NodeIdentity
from motey.orchestrator.blueprint import load_blueprint, service_from_blueprint
from motey.orchestrator.cluster import ClusterGateway
from motey.orchestrator.placement import Placement, PlacementError
from motey.orchestrator.policy import BlueprintPolicy
from motey.orchestrator.relocation import pending_moves
from motey.repositories.service_repository import ServiceRepository
from motey.val.manager import VALManager

log = logbook.Logger(__name__)

_HISTORY_LIMIT = 50
_WATCHED = (ServiceState.RUNNING, ServiceState.INSTANTIATING)


class InterNodeOrchestrator:
    """Deploys, watches and terminates services across the cluster."""

    def __init__(
        self,
        services: ServiceRepository,
        val_manager: VALManager,
        gateway: ClusterGateway,
        placement: Placement,
        identity: NodeIdentity,
        watch_interval: float = 2.0,
        workers: int = 4,
        subscribe_capabilities: Callable[[Callable[[Any], None]], None] | None = None,
        policy: BlueprintPolicy | None = None,
    ) -> None:
        self._services = services
        self._policy = policy or BlueprintPolicy()
        self._val = val_manager
        self._gateway = gateway
        self._placement = placement
        self._identity = identity
        self._watch_interval = watch_interval
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._pending: dict[str, int] = {}
        self._pending_guard = threading.Lock()
        self._cancelled: set[str] = set()
        self._listeners: list[Callable[[Service], None]] = []
        self._wake = threading.Event()
        self._deferred: list[tuple[str, Callable[[str], None]]] = []
        self._lifecycle_subscribed = False
        if subscribe_capabilities is not None:
            # A local capability change is checked at once, not at the next round.
            subscribe_capabilities(lambda _caps: self._wake.set())

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Reconcile with the engine, then start the workers and the watcher."""
        if self._pool is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="motey-orch")
        if not self._lifecycle_subscribed:
            self._identity.subscribe(self._on_lifecycle)
            self._lifecycle_subscribed = True
        self._reconcile()
        self._watcher = threading.Thread(target=self._watch_loop, name="motey-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Finish running jobs, drop queued ones (they resume on restart); idempotent."""
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def subscribe(self, listener: Callable[[Service], None]) -> None:
        """Be called with a service after each stored change of its state."""
        self._listeners.append(listener)

    # -- queries -------------------------------------------------------------------
    def list_services(self) -> list[Service]:
        return self._services.all()

    def get_service(self, service_id: str) -> Service:
        service = self._services.get(service_id)
        if service is None:
            raise NotFoundError(f"no service with id {service_id!r}", field="id")
        return service

    # -- commands ------------------------------------------------------------------
    def submit_blueprint(self, text: str) -> Service:
        """Validate a YAML blueprint, store the service and start deploying it.

        Anything that makes the blueprint unusable (syntax, schema, engine, parameters,
        an image this node should run but cannot get) is raised here, before anything
        is stored.
        """
        self._identity.require_operational()
        data = load_blueprint(text)
        service = service_from_blueprint(data, owner_id=self._identity.id)
        local_caps = self._gateway.describe(self._gateway.local_node())["capabilities"]
        for index, image in enumerate(service.images):
            self._val.validate(image, f"images[{index}]")
            self._policy.check(image, f"images[{index}]", f"node {self._identity.name}")
        for index, image in enumerate(service.images):
            if not unmet(image.capabilities, local_caps):
                try:
                    self._val.ensure_image(image)
                except MoteyError as exc:
                    exc.field = f"images[{index}].name"
                    raise
        self._services.add(service)
        log.info(
            "accepted service {} ({}) with {} image(s)",
            service.service_name,
            service.id,
            len(service.images),
        )
        self._schedule(service.id, self._deploy)
        return service

    def terminate(self, service_id: str) -> Service:
        """Ask for a service's termination; it stops asynchronously."""
        service = self.get_service(service_id)
        if service.state is ServiceState.TERMINATED:
            return service
        self._cancelled.add(service_id)
        lock = self._lock_for(service_id)
        if lock.acquire(blocking=False):
            try:
                service = self.get_service(service_id)
                if service.state is not ServiceState.TERMINATED:
                    self._set_state(service, ServiceState.STOPPING, "termination requested")
            finally:
                lock.release()
        self._schedule(service_id, self._terminate)
        return service

    def terminate_by_blueprint(self, text: str) -> list[Service]:
        """The original's ``DELETE /v1/service`` with a YAML body: terminate by name."""
        data = load_blueprint(text)
        matches = [
            s
            for s in self._services.find_by_name(data["service_name"])
            if s.state is not ServiceState.TERMINATED
        ]
        if not matches:
            raise NotFoundError(
                f"no active service named {data['service_name']!r}", field="service_name"
            )
        return [self.terminate(s.id) for s in matches]

    # -- jobs ----------------------------------------------------------------------
    def _schedule(self, service_id: str, job: Callable[[str], None]) -> Future[None] | None:
        if self._pool is None or self._stop.is_set():
            log.warning("orchestrator is not running; job for service {} deferred", service_id)
            return None
        self._mark_pending(service_id, +1)

        def run() -> None:
            try:
                job(service_id)
            except Exception as exc:  # a job failure must never kill a worker silently
                log.exception("job for service {} failed: {}", service_id, exc)
            finally:
                self._mark_pending(service_id, -1)

        try:
            return self._pool.submit(run)
        except RuntimeError:  # pool shut down between the check and the submit
            self._mark_pending(service_id, -1)
            return None

    def _mark_pending(self, service_id: str, delta: int) -> None:
        """Count queued jobs per service; the watcher leaves services with jobs alone."""
        with self._pending_guard:
            count = self._pending.get(service_id, 0) + delta
            if count > 0:
                self._pending[service_id] = count
            else:
                self._pending.pop(service_id, None)

    def _deploy(self, service_id: str) -> None:
        with self._lock_for(service_id):
            service = self._services.get(service_id)
            if service is None or service.state not in (
                ServiceState.INITIAL,
                ServiceState.INSTANTIATING,
            ):
                return
            if service_id in self._cancelled:
                return
            self._set_state(service, ServiceState.INSTANTIATING, "deploying images")
            for image in service.images:
                if self._stop.is_set() or service_id in self._cancelled:
                    log.info("deployment of service {} interrupted", service_id)
                    return
                try:
                    self._deploy_image(service, image)
                except MoteyError as exc:
                    image.state = ImageState.ERROR
                    image.state_message = exc.message
                    self._rollback(service, f"image {image.name!r}: {exc.message}")
                    return
            self._refresh_state(service, default_message="all images running")

    def _deploy_image(self, service: Service, image: Image) -> None:
        if image.node_id or image.node:
            node = self._gateway.node_for(image)
        else:
            node = self._placement.place(image)
        image.node = node.ip
        image.node_id = node.id
        image.state = ImageState.INSTANTIATING
        image.state_message = ""
        self._save(service)
        log.info("deploying image {} ({}) on node {}", image.id, image.name, node.ip)
        image.instance_id = self._gateway.deploy(node, image)
        status = self._gateway.status(image)
        image.state = status.state
        image.state_message = status.message
        self._save(service)
        if image.state is ImageState.ERROR:
            raise MoteyError(status.message or "image failed right after start")

    def _rollback(self, service: Service, reason: str) -> None:
        """Remove whatever a failed deployment started, then mark the service ERROR."""
        log.error("deployment of service {} failed: {}", service.id, reason)
        for image in service.images:
            if not (image.node or image.node_id):
                continue
            try:
                self._gateway.terminate(image)
                image.instance_id = None
                if image.state is not ImageState.ERROR:
                    image.state = ImageState.TERMINATED
                    image.state_message = "removed after failed deployment"
            except MoteyError as exc:
                log.error("could not remove image {} after failure: {}", image.id, exc.message)
                image.state_message = f"{image.state_message}; cleanup failed: {exc.message}"
        self._set_state(service, ServiceState.ERROR, reason)

    def _terminate(self, service_id: str) -> None:
        with self._lock_for(service_id):
            service = self._services.get(service_id)
            if service is None or service.state is ServiceState.TERMINATED:
                self._cancelled.discard(service_id)
                return
            if service.state is not ServiceState.STOPPING:
                self._set_state(service, ServiceState.STOPPING, "termination requested")
            failures = []
            for image in service.images:
                if not (image.node or image.node_id):
                    image.state = ImageState.TERMINATED
                    continue
                try:
                    self._gateway.terminate(image)
                    image.state = ImageState.TERMINATED
                    image.state_message = ""
                    image.instance_id = None
                except MoteyError as exc:
                    failures.append(f"image {image.name!r} on {image.node}: {exc.message}")
                    image.state_message = f"termination failed: {exc.message}"
            self._cancelled.discard(service_id)
            if failures:
                self._set_state(service, ServiceState.ERROR, "; ".join(failures))
            else:
                self._set_state(service, ServiceState.TERMINATED, "terminated on request")

    # -- watching ------------------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._watch_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.watch_once()
            except Exception as exc:  # the watcher must survive any single failure
                log.exception("service watcher round failed: {}", exc)

    def watch_once(self) -> None:
        """Refresh running services from their images' states and follow the hardware."""
        for service in self._services.all():
            if self._stop.is_set():
                return
            if not self._is_watched(service) or service.id in self._pending:
                continue
            lock = self._lock_for(service.id)
            if not lock.acquire(blocking=False):
                continue
            try:
                current = self._services.get(service.id)
                if current is None or not self._is_watched(current):
                    continue
                before = current.to_dict()
                self._refresh_images(current)
                self._follow_hardware(current)
                self._refresh_state(current, persist=False)
                if current.to_dict() != before:  # one write per round, and only on change
                    self._save(current)
            finally:
                lock.release()

    @staticmethod
    def _is_watched(service: Service) -> bool:
        """Running services, and failed ones that may still recover.

        A failed service is watched while an image waits for a suitable node or still
        has an instance (a container that exited may be restarted, a node that was
        unreachable may return); one whose deployment was rolled back is final.
        """
        return service.state in _WATCHED or (
            service.state is ServiceState.ERROR
            and any(
                i.awaiting_placement or (i.instance_id and i.state is not ImageState.TERMINATED)
                for i in service.images
            )
        )

    def _follow_hardware(self, service: Service) -> None:
        """Move images whose node lost a required capability; place waiting ones.

        The old copy is always stopped before the new one starts, so there is never a
        moment with two copies running. When no node qualifies the image waits (service
        ERROR, reason recorded) and is placed as soon as one does.
        """
        for move in pending_moves(service.images, self._gateway):
            image = move.image
            waiting = image.awaiting_placement
            if not waiting:
                log.warning("service {}: image {}: {}", service.id, image.id, move.reason)
                self._record(service, f"image {image.name!r}: {move.reason}")
            exclude = set() if waiting else {image.node_id or image.node or ""}
            try:
                target = self._placement.place(image, exclude=exclude)
            except PlacementError as exc:
                if not waiting:
                    self._stop_copy(service, image)
                    image.awaiting_placement = True
                    image.state = ImageState.ERROR
                    image.state_message = (
                        f"waiting for a node that meets its requirements: {exc.message}"
                    )
                    self._record(service, f"image {image.name!r} is waiting: {exc.message}")
                continue
            old = image.node
            if not waiting:
                self._stop_copy(service, image)
            image.node, image.node_id = target.ip, target.id
            image.awaiting_placement = False
            image.state = ImageState.INSTANTIATING
            image.state_message = ""
            self._save(service)
            try:
                image.instance_id = self._gateway.deploy(target, image)
                status = self._gateway.status(image)
                image.state, image.state_message = status.state, status.message
            except MoteyError as exc:
                log.error("could not start image {} on {}: {}", image.id, target.ip, exc.message)
                self._stop_copy(service, image)
                image.awaiting_placement = True
                image.state = ImageState.ERROR
                image.state_message = f"waiting: start on {target.ip} failed: {exc.message}"
                continue
            verb = f"moved from {old} to" if old else "placed on"
            self._record(service, f"image {image.name!r} {verb} {target.ip}")

    def _stop_copy(self, service: Service, image: Image) -> None:
        """Stop an image where it runs now and forget its placement."""
        if image.node or image.node_id:
            try:
                self._gateway.terminate(image)
            except MoteyError as exc:
                log.error("could not stop image {} on {}: {}", image.id, image.node, exc.message)
        image.node = image.node_id = image.instance_id = None
        self._save(service)

    def _record(self, service: Service, message: str) -> None:
        """Add an event to the service's history without changing its state."""
        service.history.append(
            {"at": time.time(), "state": service.state.value, "message": message}
        )
        del service.history[:-_HISTORY_LIMIT]
        self._save(service)

    def _refresh_images(self, service: Service) -> None:
        for image in service.images:
            if not (image.node or image.node_id) or image.state is ImageState.TERMINATED:
                continue
            try:
                status = self._gateway.status(image)
            except CommunicationError as exc:
                if image.state is not ImageState.ERROR:
                    log.warning("image {} of service {}: {}", image.id, service.id, exc.message)
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
            image.state = status.state
            image.state_message = status.message

    def _refresh_state(
        self, service: Service, default_message: str = "", persist: bool = True
    ) -> None:
        state = service_state_from_images([i.state for i in service.images])
        if state is ServiceState.ERROR:
            bad = [
                f"image {i.name!r}: {i.state_message or i.state.value}"
                for i in service.images
                if i.state in (ImageState.ERROR, ImageState.TERMINATED)
            ]
            message = "; ".join(bad)
        elif state is ServiceState.RUNNING:
            message = default_message or service.state_message or "all images running"
            if service.state is not ServiceState.RUNNING:
                message = "all images running"
        elif state is ServiceState.TERMINATED:
            message = "all images exited"
        else:
            message = default_message or service.state_message
        self._set_state(service, state, message, persist=persist)

    # -- recovery ------------------------------------------------------------------
    def _reconcile(self) -> None:
        """After a (re)start: resume interrupted jobs and remove orphaned instances."""
        services = self._services.all()
        live_images: set[str] = set()
        for service in services:
            if service.state is ServiceState.TERMINATED:
                continue
            for image in service.images:
                if image.state is not ImageState.TERMINATED:
                    live_images.add(image.id)
        try:
            instances = self._val.list_instances()
        except MoteyError as exc:
            log.error("cannot list instances for recovery: {}", exc.message)
            instances = {}
        for engine, found in instances.items():
            for info in found:
                owner = info.labels.get("motey.owner_id")
                if owner != self._identity.id or info.image_id in live_images:
                    continue
                log.warning(
                    "removing orphaned {} instance {} (image {}, service {})",
                    engine,
                    info.instance_id[:12],
                    info.image_id,
                    info.service_id,
                )
                try:
                    self._val.plugin(engine).terminate(info.image_id or "")
                except MoteyError as exc:
                    log.error("could not remove orphan {}: {}", info.instance_id[:12], exc.message)
        resume: list[tuple[str, Callable[[str], None]]] = []
        for service in services:
            if service.state in (ServiceState.INITIAL, ServiceState.INSTANTIATING):
                log.info("will resume deployment of service {}", service.id)
                resume.append((service.id, self._deploy))
            elif service.state is ServiceState.STOPPING:
                log.info("will resume termination of service {}", service.id)
                self._cancelled.add(service.id)
                resume.append((service.id, self._terminate))
        # Deployments are refused until the node operates (its other components, e.g.
        # discovery, start after the orchestrator), so resumed jobs wait for OPERATE.
        for service_id, _job in resume:
            self._mark_pending(service_id, +1)
        self._deferred = resume
        self._on_lifecycle(self._identity.lifecycle)

    def _on_lifecycle(self, phase: NodeLifecycle) -> None:
        """Start the jobs deferred at start-up once the node operates."""
        if phase is not NodeLifecycle.OPERATE or not self._deferred:
            return
        jobs, self._deferred = self._deferred, []
        for service_id, job in jobs:
            self._schedule(service_id, job)
            self._mark_pending(service_id, -1)

    # -- helpers -------------------------------------------------------------------
    def _lock_for(self, service_id: str) -> threading.RLock:
        with self._locks_guard:
            lock = self._locks.get(service_id)
            if lock is None:
                lock = self._locks[service_id] = threading.RLock()
            return lock

    def _set_state(
        self, service: Service, state: ServiceState, message: str, persist: bool = True
    ) -> None:
        """Set the state (recording a change in the history); ``persist=False`` leaves the
        write to the caller, which batches it with other changes of the same round."""
        changed = state is not service.state or message != service.state_message
        if state is not service.state:
            log.info(
                "service {} ({}) is now {}: {}",
                service.service_name,
                service.id,
                state.value,
                message,
            )
            service.history.append({"at": time.time(), "state": state.value, "message": message})
            del service.history[:-_HISTORY_LIMIT]
        service.state = state
        service.state_message = message
        if persist:
            self._save(service)
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(service)
                except Exception as exc:  # listeners must not break the lifecycle
                    log.error("service listener failed: {}", exc)

    def _save(self, service: Service) -> None:
        service.updated_at = time.time()
        self._services.update(service)
