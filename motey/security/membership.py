"""Who belongs to the cell right now: the CURVE keys of authenticated, unrevoked members.

A member's CURVE public key reaches the others in its presence, which only that member
can publish (broker ACL: identity = certificate name) and which carries the cell CA's
signature over (name, key). The ZeroMQ repliers answer a client only when its key is
one of these; a CA-signed revocation list removes a member at once, without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import logbook

from motey.errors import ValidationError
from motey.security import pki, revocation
from motey.security.credentials import NodeCredentials

log = logbook.Logger(__name__)


class CellMembers:
    """The membership registry a secure node keeps; inert (everyone allowed) when open."""

    def __init__(self, credentials: NodeCredentials | None) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}  # CURVE public key -> member name
        self._revoked = revocation.Revocations()
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        if credentials is not None:
            self._keys[credentials.curve_public] = credentials.name
            if credentials.revocations:
                try:
                    self.apply_revocations(credentials.revocations)
                except ValidationError as exc:
                    log.warning("ignored {}: {}", credentials.folder / "revocations.json", exc)

    @property
    def secure(self) -> bool:
        return self._credentials is not None

    def subscribe(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Be told the CURVE keys revoked by a new revocation list."""
        self._listeners.append(listener)

    def admit(self, name: str, curve_key: str | None, signature: str | None) -> str | None:
        """Record a member's key from its presence; the reason it is refused, or ``None``."""
        if self._credentials is None:
            return None
        if not curve_key or not signature:
            return f"presence of {name} carries no CA-signed CURVE key"
        if curve_key in self._revoked.curve_keys:
            return f"the CURVE key of {name} is revoked"
        if not pki.verify(self._credentials.ca, pki.curve_message(name, curve_key), signature):
            return f"the CURVE key in the presence of {name} is not signed by the cell CA"
        with self._lock:
            for key, owner in list(self._keys.items()):
                if owner == name and key != curve_key and key != self._credentials.curve_public:
                    del self._keys[key]  # rotated credentials: the old key stops working
            self._keys[curve_key] = name
        return None

    def member_for_key(self, curve_key: str) -> str | None:
        """The member name that owns ``curve_key``, or ``None`` for a stranger."""
        with self._lock:
            return self._keys.get(curve_key)

    def apply_revocations(self, payload: bytes) -> frozenset[str]:
        """Verify and apply a revocation list; returns the CURVE keys it newly revokes.

        Revocation is by key (each issued credential has its own), so a name revoked and
        issued again is accepted with its new key.
        """
        if self._credentials is None:
            return frozenset()
        update = revocation.decode(self._credentials.ca, payload)
        with self._lock:
            if update.sequence <= self._revoked.sequence and self._revoked.sequence:
                return frozenset()
            newly = update.curve_keys - self._revoked.curve_keys
            self._revoked = update
            names = sorted({self._keys.get(k, "?") for k in newly})
            for key in update.curve_keys:
                if key != self._credentials.curve_public:
                    self._keys.pop(key, None)
        if newly:
            log.warning(
                "revocation list {}: revoked {} key(s) ({})", update.sequence, len(newly), names
            )
            for listener in list(self._listeners):
                try:
                    listener(newly)
                except Exception as exc:  # one listener must not stop the others
                    log.error("revocation listener failed: {}", exc)
        if self._credentials.curve_public in update.curve_keys:
            log.critical("this node ({}) is revoked by the cell", self._credentials.name)
        return newly
