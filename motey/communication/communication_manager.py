"""The CommunicationManager: one facade that starts and stops every transport."""

from __future__ import annotations

from motey.lifecycle import Component, LifecycleGroup


class CommunicationManager(LifecycleGroup):
    """Starts transports in order and stops them in reverse (a :class:`LifecycleGroup`).

    The orchestrator and the capability engine never hold a transport themselves; they
    get the narrow clients they need (e.g. the remote node client) through the container.
    """

    def __init__(self, transports: list[Component | None]) -> None:
        super().__init__("communication", transports)
