"""The CommunicationManager: one facade that starts and stops every transport."""

from __future__ import annotations

from typing import Protocol

import logbook

log = logbook.Logger(__name__)


class Transport(Protocol):
    """Anything the manager can start and stop (REST server, MQTT client, ZeroMQ servers)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class CommunicationManager:
    """Starts transports in order and stops them in reverse.

    The orchestrator and the capability engine never hold a transport themselves; they
    get the narrow clients they need (e.g. the remote node client) through the container.
    """

    def __init__(self, transports: list[Transport]) -> None:
        self._transports = [t for t in transports if t is not None]
        self._started: list[Transport] = []

    def start(self) -> None:
        for transport in self._transports:
            transport.start()
            self._started.append(transport)

    def stop(self) -> None:
        while self._started:
            transport = self._started.pop()
            try:
                transport.stop()
            except Exception as exc:  # keep stopping the rest
                log.error("transport {} did not stop cleanly: {}", type(transport).__name__, exc)
