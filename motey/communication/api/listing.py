"""List responses for big cells: serialised once per change, paged, fields chosen.

``GET /v1/service`` with 100 services spent most of its time re-serialising the same
133 KB (``jsonify`` alone was 43 %). A :class:`ListingCache` keeps the encoded body of
each distinct request (caller role, page, fields) for as long as the services'
generation (:attr:`ServiceRepository.generation`) has not moved; any write clears it.
``?limit=&offset=`` pages and ``?fields=a,b`` trims each entry, so a client of a big
cell asks only for what it shows. See docs/scale.md.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from motey.errors import ValidationError
from motey.models.service import Service
from motey.security.redaction import redact_service

#: Distinct encoded bodies kept per generation (roles × pages × field sets).
MAX_ENTRIES = 64
#: The largest page a client may ask for.
MAX_LIMIT = 1000
_FIELD = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True)
class Page:
    """Which slice of a list, and which fields of each entry (``None``: all)."""

    offset: int = 0
    limit: int | None = None
    fields: tuple[str, ...] | None = None

    def apply(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        end = None if self.limit is None else self.offset + self.limit
        chosen = entries[self.offset : end]
        if self.fields is None:
            return chosen
        return [{k: e[k] for k in self.fields if k in e} for e in chosen]


def _count(args: Mapping[str, str], name: str, upper: int | None) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, got {raw!r}", field=name) from None
    if value < 0 or (upper is not None and value > upper):
        bound = f"0..{upper}" if upper is not None else "0 or more"
        raise ValidationError(f"{name} must be {bound}, got {value}", field=name)
    return value


def parse_page(args: Mapping[str, str]) -> Page:
    """``offset``, ``limit`` and ``fields`` of a list request; a clear 400 when bad."""
    offset = _count(args, "offset", None) or 0
    limit = _count(args, "limit", MAX_LIMIT)
    fields: tuple[str, ...] | None = None
    raw = args.get("fields")
    if raw is not None:
        names = tuple(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
        if not names or not all(_FIELD.fullmatch(n) for n in names):
            raise ValidationError(
                "fields must be a comma-separated list of field names (e.g. id,state)",
                field="fields",
            )
        fields = names
    return Page(offset, limit, fields)


def encode(value: Any) -> bytes:
    """Compact JSON as UTF-8 (what ``jsonify`` sends, without its per-call overhead)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ListingCache:
    """Encoded list bodies, valid for one generation of the underlying records."""

    def __init__(self, generation: Callable[[], int]) -> None:
        self._generation = generation
        self._lock = threading.Lock()
        self._seen = -1
        self._bodies: dict[Hashable, bytes] = {}

    def body(self, key: Hashable, render: Callable[[], Any]) -> bytes:
        """The encoded body for ``key``; ``render`` runs only after a change."""
        generation = self._generation()
        with self._lock:
            if generation != self._seen:
                self._bodies.clear()
                self._seen = generation
            cached = self._bodies.get(key)
        if cached is not None:
            return cached
        encoded = encode(render())
        with self._lock:
            # A write during render moved the generation: keep nothing that may be stale.
            if self._generation() == generation == self._seen:
                if len(self._bodies) >= MAX_ENTRIES:
                    self._bodies.pop(next(iter(self._bodies)))
                self._bodies[key] = encoded
        return encoded


def service_entry(service: Service, role: str | None) -> dict[str, Any]:
    """A service's JSON as the REST API shows it to a caller of ``role``."""
    body = service.to_dict()
    body["links"] = {"self": f"/v1/service/{service.id}"}
    return redact_service(body, role)


class ServiceListing:
    """The bodies of ``GET /v1/service``: one :class:`ListingCache` over the services.

    Shared by the Flask view and the fast path in front of Flask
    (:mod:`motey.communication.api.fast_listing`), so both answer from the same bytes.
    """

    def __init__(self, services: Callable[[], list[Service]], generation: Callable[[], int]):
        self._services = services
        self._cache = ListingCache(generation)

    def body(self, role: str | None, page: Page) -> bytes:
        """The encoded list for a caller of ``role``; rendered only after a change."""
        return self._cache.body(
            (role, page),
            lambda: page.apply([service_entry(s, role) for s in self._services()]),
        )
