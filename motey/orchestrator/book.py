"""The orchestrator's record keeping: per-service locks, state changes and history.

Every lifecycle step (deploy, terminate, watch, move, recovery) changes a stored service
only through this class, so the rules for a state change — history entry, log line,
listeners, one write — live in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import logbook

from motey.errors import NotFoundError
from motey.models.image import ImageState
from motey.models.service import Service, ServiceState, service_state_from_images
from motey.repositories.base import Health
from motey.repositories.service_repository import ServiceRepository

log = logbook.Logger(__name__)

#: Entries kept in a service's history.
HISTORY_LIMIT = 50


class ServiceBook:
    """Stored services plus the locks and listeners of their lifecycle."""

    def __init__(self, services: ServiceRepository) -> None:
        self._services = services
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        # Images of one service are deployed in parallel threads that share the Service
        # object; their writes are serialised here (the service lock is the job's).
        self._write = threading.Lock()
        self._listeners: list[Callable[[Service], None]] = []

    # -- reading -------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Moves with every stored change (memoised service lists compare it)."""
        return self._services.generation

    def all(self) -> list[Service]:
        return self._services.all()

    def get(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def require(self, service_id: str) -> Service:
        service = self._services.get(service_id)
        if service is None:
            raise NotFoundError(f"no service with id {service_id!r}", field="id")
        return service

    def find_by_name(self, name: str) -> list[Service]:
        return self._services.find_by_name(name)

    def add(self, service: Service) -> None:
        self._services.add(service)

    def health(self) -> Health:
        """Whether the stored services name every service this node has (see recovery)."""
        return self._services.health()

    # -- locking -------------------------------------------------------------------
    def lock(self, service_id: str) -> threading.RLock:
        """The lock every change of one service is made under."""
        with self._guard:
            lock = self._locks.get(service_id)
            if lock is None:
                lock = self._locks[service_id] = threading.RLock()
            return lock

    def subscribe(self, listener: Callable[[Service], None]) -> None:
        """Be called with a service after each stored change of its state."""
        self._listeners.append(listener)

    # -- writing -------------------------------------------------------------------
    def save(self, service: Service) -> None:
        with self._write:
            service.updated_at = time.time()
            self._services.update(service)

    def record(self, service: Service, message: str) -> None:
        """Add an event to the service's history without changing its state."""
        service.history.append(
            {"at": time.time(), "state": service.state.value, "message": message}
        )
        del service.history[:-HISTORY_LIMIT]
        self.save(service)

    def set_state(
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
            del service.history[:-HISTORY_LIMIT]
        service.state = state
        service.state_message = message
        if persist:
            self.save(service)
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(service)
                except Exception as exc:  # listeners must not break the lifecycle
                    log.error("service listener failed: {}", exc)

    def refresh_state(
        self, service: Service, default_message: str = "", persist: bool = True
    ) -> None:
        """The service's state from its images' states (design.md, "States")."""
        state = service_state_from_images([i.state for i in service.images])
        if state is ServiceState.ERROR:
            message = "; ".join(
                f"image {i.name!r}: {i.state_message or i.state.value}"
                for i in service.images
                if i.state in (ImageState.ERROR, ImageState.TERMINATED)
            )
        elif state is ServiceState.RUNNING:
            message = default_message or service.state_message or "all images running"
            if service.state is not ServiceState.RUNNING:
                message = "all images running"
        elif state is ServiceState.TERMINATED:
            message = "all images exited"
        else:
            waiting = [
                f"image {i.name!r}: {i.state_message}"
                for i in service.images
                if i.awaiting_placement
            ]
            message = "; ".join(waiting) or default_message or service.state_message
        self.set_state(service, state, message, persist=persist)
