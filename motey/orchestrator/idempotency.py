"""Idempotent service creation: a retried POST returns the first answer.

A client whose ``201`` was lost (a timeout, the node crashing right after the write)
retries; without a key that retry created a second service. With an ``Idempotency-Key``
the same key within :data:`KEY_TTL` seconds gets the first answer again — the same
status and body — also after a restart. The key is stored on the service itself in the
same write that creates it, and the answer right after; a retry that finds a service
with its key but no answer (the node stopped between the two writes) rebuilds the
answer from that service instead of creating another.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import logbook

from motey.errors import UnprocessableError, ValidationError
from motey.models.service import Service
from motey.repositories.idempotency_repository import IdempotencyRepository
from motey.repositories.service_repository import ServiceRepository

log = logbook.Logger(__name__)

#: Seconds a key is remembered (Stripe and the IETF draft use 24 hours).
KEY_TTL = 24 * 3600.0
MAX_KEY_LENGTH = 255


class Submitter(Protocol):
    def submit_blueprint(self, text: str, idempotency_key: str | None = None) -> Service: ...


@dataclass(frozen=True)
class Answer:
    """What the REST layer sends: status, JSON body, and whether it is a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def check_key(key: str) -> str:
    """A key is 1–255 visible ASCII characters (what the header can carry safely)."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise ValidationError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            field="Idempotency-Key",
        )
    return key


class IdempotentSubmissions:
    """Creates a service once per key; later requests with the key get the first answer."""

    def __init__(
        self,
        orchestrator: Submitter,
        services: ServiceRepository,
        answers: IdempotencyRepository,
        ttl: float = KEY_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orchestrator = orchestrator
        self._services = services
        self._answers = answers
        self._ttl = ttl
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def submit(
        self,
        text: str,
        key: str,
        render: Callable[[Service], dict[str, Any]],
        create: Callable[[str], Service] | None = None,
    ) -> Answer:
        """Create the service of ``text`` unless ``key`` already created one.

        ``create`` makes the service from the key (a Compose file takes another path than
        a blueprint); by default the orchestrator's ``submit_blueprint`` of ``text``.
        """
        check_key(key)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        lock = self._acquire(key)
        try:
            with lock:
                now = self._clock()
                self._answers.remove_older_than(now - self._ttl)
                record = self._answers.get(key)
                if record is None:
                    record = self._recover(key, digest, now, render)
                if record is not None:
                    if record.get("digest") not in (None, digest):
                        raise UnprocessableError(
                            "this Idempotency-Key was already used for a different blueprint",
                            field="Idempotency-Key",
                        )
                    log.info("replaying the answer for Idempotency-Key {}", key)
                    return Answer(int(record["status"]), dict(record["body"]), replayed=True)
                if create is None:
                    service = self._orchestrator.submit_blueprint(text, idempotency_key=key)
                else:
                    service = create(key)
                body = render(service)
                self._answers.put(
                    {
                        "key": key,
                        "digest": digest,
                        "status": 201,
                        "body": body,
                        "at": now,
                        "service_id": service.id,
                    }
                )
                return Answer(201, body)
        finally:
            self._release(key)

    def _recover(
        self, key: str, digest: str, now: float, render: Callable[[Service], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """A service created with ``key`` whose answer was never stored (a crash between)."""
        fresh = [
            s for s in self._services.find_by_idempotency_key(key) if s.created_at > now - self._ttl
        ]
        if not fresh:
            return None
        service = min(fresh, key=lambda s: s.created_at)
        record = {
            "key": key,
            "digest": None,
            "status": 201,
            "body": render(service),
            "at": service.created_at,
            "service_id": service.id,
        }
        self._answers.put(record)
        return record

    def _acquire(self, key: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
            return lock

    def _release(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
