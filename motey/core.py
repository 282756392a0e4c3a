"""The Core: starts the components in order, waits for a signal, stops them in reverse."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Protocol

import logbook

from motey.models.node import NodeLifecycle
from motey.node.identity import NodeIdentity

log = logbook.Logger(__name__)


class Component(Protocol):
    """Something with a lifecycle: ``start()`` and an idempotent ``stop()``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Core:
    """Builds nothing itself; drives the lifecycle of what the container built."""

    def __init__(self, identity: NodeIdentity, components: Sequence[Component]) -> None:
        self._identity = identity
        self._components = list(components)
        self._started: list[Component] = []
        self._stop_event = threading.Event()

    def start(self) -> None:
        """Start every component; on a failure stop the ones already started and re-raise."""
        self._identity.set_lifecycle(NodeLifecycle.PROVISION, "starting components")
        try:
            for component in self._components:
                log.debug("starting {}", type(component).__name__)
                component.start()
                self._started.append(component)
        except BaseException:
            self.stop()
            raise
        self._identity.set_lifecycle(NodeLifecycle.OPERATE, "")
        log.info(
            "Motey node {} ({}) operating at {}",
            self._identity.name,
            self._identity.id,
            self._identity.ip,
        )

    def stop(self) -> None:
        """Stop started components in reverse order; idempotent."""
        if self._started:
            self._identity.set_lifecycle(NodeLifecycle.DECOMMISSION, "shutting down")
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
            except Exception as exc:  # keep stopping the others
                log.error("{} did not stop cleanly: {}", type(component).__name__, exc)
        self._stop_event.set()

    def request_stop(self, *_: object) -> None:
        """Signal handler: make :meth:`run` return."""
        self._stop_event.set()

    def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT, stop."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            self._stop_event.wait()
            log.info("stop requested; shutting down")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
