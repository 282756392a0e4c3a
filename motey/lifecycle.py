"""One ordered start/stop group: the Core and the CommunicationManager both use it.

Modelled on Home Assistant's staged shutdown: components start in order; a failure
half-way through a start stops what had already started (so no REST server stays bound
by a node that failed to start); a stop goes in reverse, and every component gets a
fixed wait (its ``STOP_WAIT`` in seconds). A stop that overruns its wait is logged and
left behind, so a group always stops within the sum of its members' waits — and
``motey stop --timeout`` (30 s by default) is chosen above that sum (a test checks it).

A component reports through ``drained`` (when it has that attribute) whether the
threads that served requests (REST workers, ZeroMQ repliers) have left their handlers;
only a group that stopped cleanly lets the entry point close the shared resources (the
ZeroMQ context) those threads use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

import logbook

log = logbook.Logger(__name__)

#: Seconds a component without its own ``STOP_WAIT`` gets to stop.
DEFAULT_STOP_WAIT = 5.0


class Component(Protocol):
    """Something with a lifecycle: ``start()`` and an idempotent ``stop()``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def stop_wait(component: object) -> float:
    """The fixed number of seconds ``component`` may take to stop."""
    return float(getattr(component, "STOP_WAIT", DEFAULT_STOP_WAIT))


class LifecycleGroup:
    """Starts members in order, stops them in reverse, each within its fixed wait."""

    def __init__(self, name: str, members: Sequence[Component | None]) -> None:
        self.name = name
        self._members = [m for m in members if m is not None]
        self._started: list[Component] = []
        self._guard = threading.Lock()
        #: False once a member overran its wait or still had a handler running.
        self.drained = True

    @property
    def STOP_WAIT(self) -> float:  # noqa: N802 - the attribute every component may have
        """A group's wait is the sum of its members' waits."""
        return sum(stop_wait(m) for m in self._members)

    @property
    def members(self) -> list[Component]:
        return list(self._members)

    def start(self) -> None:
        """Start every member; on a failure stop the started ones in reverse and re-raise."""
        self.drained = True
        try:
            for member in self._members:
                log.debug("{}: starting {}", self.name, type(member).__name__)
                member.start()
                with self._guard:
                    self._started.append(member)
        except BaseException:
            log.error("{}: start failed; stopping what had started", self.name)
            self.stop()
            raise

    def stop(self) -> None:
        """Stop started members in reverse order, each within its wait; idempotent."""
        while True:
            with self._guard:
                if not self._started:
                    return
                member = self._started.pop()
            if not self._stop_one(member):
                self.drained = False

    def _stop_one(self, member: Component) -> bool:
        """Stop one member in a helper thread; ``False`` when it overran or did not drain."""
        name = type(member).__name__
        wait = stop_wait(member)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                member.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)

        began = time.monotonic()
        worker = threading.Thread(target=run, name=f"motey-stop-{name}", daemon=True)
        worker.start()
        worker.join(wait)
        if worker.is_alive():
            log.error("{}: {} did not stop within {:g} s; going on", self.name, name, wait)
            return False
        if errors:
            log.error("{}: {} did not stop cleanly: {}", self.name, name, errors[0])
        log.debug("{}: {} stopped in {:.2f} s", self.name, name, time.monotonic() - began)
        return not errors and bool(getattr(member, "drained", True))
