"""The Core: starts the components in order, waits for a signal, stops them in reverse."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

import logbook

from motey.lifecycle import Component, LifecycleGroup
from motey.models.node import NodeLifecycle
from motey.node.identity import NodeIdentity

log = logbook.Logger(__name__)

__all__ = ["Component", "Core"]


class Core:
    """Builds nothing itself; drives the lifecycle of what the container built.

    ``components`` (engines, transports) start first; ``workers`` (the orchestrator)
    start after them and stop before them, while the node still operates: a job that is
    stopping pauses, and only then does the node turn ``DECOMMISSION`` (which refuses
    work). The other way round, a running deployment met ``DECOMMISSION`` on its next
    image and ended in a final ``ERROR``.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        components: Sequence[Component],
        workers: Sequence[Component] = (),
    ) -> None:
        self._identity = identity
        self._components = LifecycleGroup("node", components)
        self._workers = LifecycleGroup("jobs", workers)
        self._running = False
        self._stop_event = threading.Event()

    @property
    def STOP_WAIT(self) -> float:  # noqa: N802 - same attribute as every component
        """The longest a stop can take: the sum of every component's fixed wait."""
        return self._workers.STOP_WAIT + self._components.STOP_WAIT

    @property
    def drained(self) -> bool:
        """Whether every component stopped within its wait with no handler still running."""
        return self._workers.drained and self._components.drained

    def start(self) -> None:
        """Start every component; on a failure stop the ones already started and re-raise."""
        self._identity.set_lifecycle(NodeLifecycle.PROVISION, "starting components")
        self._running = True
        self._components.start()
        try:
            self._workers.start()
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
        """Pause the jobs, then leave OPERATE and stop the components in reverse; idempotent."""
        self._workers.stop()
        if self._running:
            self._running = False
            self._identity.set_lifecycle(NodeLifecycle.DECOMMISSION, "shutting down")
        self._components.stop()
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
