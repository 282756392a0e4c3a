"""Who may call what: bearer tokens, the role table, and the brake on guessing.

Transport-free on purpose: the REST layer (``motey.communication.api.access``) asks
:class:`AccessControl` for a decision and turns it into 401/403/429; the token commands
(``motey.security.token_cli``) edit the files that :class:`TokenStore` reads.

Where tokens come from (see docs/security.md, "Access control"):

* the **cell** file ``<[SECURITY] credentials>/tokens.json`` — the admin token of
  ``motey cell init``, copied to every node by ``motey cell add-node``, so it works on
  every node of the cell;
* the **node** file ``<[DATABASE] path>/tokens.json`` — tokens made on this node with
  ``motey token create``.

Both are re-read when they change on disk, so a running node sees a created or revoked
token at its next request, without a restart.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import logbook

from motey.errors import ConfigError
from motey.security.tokens import ROLES, TokenRecord, hash_token, read_token_file

log = logbook.Logger(__name__)

#: File name of a token file, in the credentials folder and in the database folder.
TOKEN_FILE = "tokens.json"

#: Where a request falls: ``None`` needs no token at all; otherwise the weakest role
#: that may make it. The one table of who may do what; first match wins.
#: Entries: (HTTP methods, path, role) where a path ending in ``/*`` matches its subtree.
ROLE_TABLE: tuple[tuple[frozenset[str], str, str | None], ...] = (
    (frozenset({"GET", "HEAD"}), "/v1/openapi.json", None),
    (frozenset({"GET", "HEAD", "POST"}), "/v1/tokens", "admin"),
    (frozenset({"GET", "HEAD", "DELETE"}), "/v1/tokens/*", "admin"),
    (frozenset({"GET", "HEAD"}), "/v1/*", "viewer"),
    (frozenset({"POST", "DELETE"}), "/v1/service", "operator"),
    (frozenset({"DELETE"}), "/v1/service/*", "operator"),
    (frozenset({"PUT", "DELETE"}), "/v1/capabilities", "operator"),
    (frozenset({"PUT"}), "/v1/node", "admin"),
)

#: What any other ``/v1`` request needs: an unknown route is nobody's business but the
#: admin's (so a viewer learns nothing about which routes exist).
DEFAULT_ROLE = "admin"


def required_role(method: str, path: str) -> str | None:
    """The weakest role that may make this request; ``None`` when it needs no token.

    Everything outside ``/v1`` is the web client's static files (the page must load
    before anyone can log in); CORS preflights carry no credentials by design.
    """
    if method == "OPTIONS" or not (path == "/v1" or path.startswith("/v1/")):
        return None
    for methods, pattern, role in ROLE_TABLE:
        if method not in methods:
            continue
        if pattern.endswith("/*"):
            if path.startswith(pattern[:-1]):
                return role
        elif path == pattern:
            return role
    if method in ("GET", "HEAD"):  # /v1 itself
        return "viewer"
    return DEFAULT_ROLE


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (roles are ordered weakest first)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Principal:
    """Who made a request: a token's name and role, and where it came from."""

    name: str
    role: str
    source: str  # "cell", "node", or "open" (no access control)


class _WatchedFile:
    """One token file, re-read when its inode, size or mtime changes."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._stamp: tuple[int, int, int] | None = None
        self.records: list[TokenRecord] = []

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:  # e.g. a folder the node may not enter: grants nothing
            if self._stamp != (0, 0, 0):
                log.error("cannot read token file {}: {}", self.path, exc)
            self._stamp, self.records = (0, 0, 0), []
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.records = read_token_file(self.path)
        except ConfigError as exc:
            # Fail closed: a file we cannot read grants nothing (a revocation in it
            # must not be undone by a half-written or damaged file).
            log.error("{}; its tokens are not accepted until it is fixed", exc.message)
            self.records = []
            return
        log.info("{} token file {}: {} token(s)", self.source, self.path, len(self.records))


class TokenStore:
    """The tokens a node accepts: the cell's file and its own, kept fresh from disk."""

    def __init__(self, cell_file: str | os.PathLike[str] | None, node_file: str | os.PathLike[str]):
        self.node_file = Path(node_file)
        self.cell_file = Path(cell_file) if cell_file else None
        self._files = [_WatchedFile(self.node_file, "node")]
        if self.cell_file is not None:
            self._files.insert(0, _WatchedFile(self.cell_file, "cell"))
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, credentials: str, database_path: str) -> TokenStore:
        """The store of a node with these ``[SECURITY] credentials`` and ``[DATABASE] path``."""
        cell = Path(credentials) / TOKEN_FILE if credentials else None
        return cls(cell, Path(database_path) / TOKEN_FILE)

    def records(self) -> list[tuple[str, TokenRecord]]:
        """Every accepted record with its source (``cell`` or ``node``), fresh from disk."""
        with self._lock:
            for file in self._files:
                file.refresh()
            return [(f.source, r) for f in self._files for r in f.records]

    def authenticate(self, token: str) -> Principal | None:
        """The principal a presented token stands for, or ``None``.

        Every stored hash is compared, in constant time, whether or not one matched
        earlier, so the answer's timing says nothing about which record (if any) is near.
        """
        presented = hash_token(token)
        found: Principal | None = None
        for source, record in self.records():
            if hmac.compare_digest(presented, record.sha256) and found is None:
                found = Principal(name=record.name, role=record.role, source=source)
        return found


class FailureLimiter:
    """Counts failed logins per client address and says how long an address must wait.

    A sliding window: after ``limit`` failures within ``window`` seconds the address is
    refused until the oldest of them leaves the window. Tokens are 256-bit random, so
    this is not what keeps them secret; it keeps a guessing client from using the node's
    CPU and log, and makes a scan visible.
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, address: str) -> float:
        """Seconds this address must still wait; 0 when it may try."""
        with self._lock:
            now = self._clock()
            times = self._recent(address, now)
            if not times:
                self._failures.pop(address, None)
                return 0.0
            if len(times) < self.limit:
                return 0.0
            return max(0.0, times[-self.limit] + self.window - now)

    def failed(self, address: str) -> None:
        """Record one failed attempt from ``address``."""
        with self._lock:
            now = self._clock()
            if address not in self._failures and len(self._failures) >= self._max_addresses:
                # Bounded memory under a scan from many addresses: forget the quietest.
                stale = [a for a, t in self._failures.items() if not self._recent(a, now)]
                for a in stale:
                    del self._failures[a]
                if len(self._failures) >= self._max_addresses:
                    self._failures.pop(next(iter(self._failures)))
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times


class AccessDenied(Exception):
    """A request that may not go on, with the HTTP status it is answered with."""

    def __init__(
        self,
        status: int,
        message: str,
        retry_after: int | None = None,
        principal: Principal | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        #: Who was refused, when known (a 403): the audit line names them.
        self.principal = principal


#: The principal of every request when ``[SECURITY] mode = open``.
OPEN_PRINCIPAL = Principal(name="anonymous", role="admin", source="open")


class AccessControl:
    """Decides one request: who is calling, and may they."""

    #: Seconds :meth:`stop` may take: it holds no thread or socket.
    STOP_WAIT = 0.1

    def __init__(self, mode: str, store: TokenStore, limiter: FailureLimiter | None = None) -> None:
        self.mode = mode
        self.store = store
        self.limiter = limiter or FailureLimiter()

    @property
    def enabled(self) -> bool:
        return self.mode != "open"

    def start(self) -> None:
        """Say at start what a caller needs, and warn when nothing can get in."""
        if not self.enabled:
            log.warning("[SECURITY] mode = open: the REST API asks nobody for a token")
            return
        records = self.store.records()
        if not records:
            log.warning(
                "no API tokens: every REST call except the web page is refused; "
                "create one with `motey token create --config FILE --name NAME --role admin`"
            )
        else:
            log.info("REST API needs a bearer token; {} token(s) accepted", len(records))

    def stop(self) -> None:
        """Nothing to release; here for the component contract."""

    def check(
        self, method: str, path: str, authorization: str | None, address: str
    ) -> Principal | None:
        """The caller of a request, ``None`` for a public one; raises :class:`AccessDenied`."""
        needed = required_role(method, path)
        if not self.enabled:
            return OPEN_PRINCIPAL if needed is not None else None
        if needed is None:
            return None
        token = _bearer(authorization)
        principal = self.store.authenticate(token) if token else None
        if principal is None:
            # The brake refuses guesses, not holders: a good token passes even from a
            # braked address (a dashboard with a revoked token polling from the same host
            # must not lock the operator's CLI out). Tokens are 256 random bits, so a
            # guess that passes is not what the brake is for (see docs/security.md).
            wait = self.limiter.retry_after(address)
            if wait > 0:
                raise AccessDenied(
                    429,
                    "too many failed attempts from this address; try again later",
                    retry_after=max(1, int(wait + 0.999)),
                )
            if token:
                # Only a presented token is a guess; a page that has not logged in yet
                # (no or an empty header) is not brought closer to the limit.
                self.limiter.failed(address)
            # The same answer for a missing, malformed, unknown or revoked token.
            raise AccessDenied(
                401, "a valid bearer token is required (Authorization: Bearer TOKEN)"
            )
        if not role_allows(principal.role, needed):
            raise AccessDenied(
                403,
                f"role {principal.role} may not {method} {path}; it needs {needed}",
                principal=principal,
            )
        return principal


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 512:
        return None
    return value
