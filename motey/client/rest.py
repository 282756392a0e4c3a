"""A small REST client for one node: address, token and CA from options or environment.

Only the standard library, so the client commands work wherever the package installs.
Every failure becomes a :class:`ClientError` with one line for the operator and the
process exit code that goes with it.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Exit codes of the client commands (documented in docs/cli.md).
EXIT_FAILED = 1  # the operation failed: service in ERROR, timeout, refused request
EXIT_INPUT = 2  # invalid file or arguments
EXIT_UNREACHABLE = 3  # no node answered
EXIT_AUTH = 4  # 401/403: bad token or role not allowed

DEFAULT_NODE = "http://127.0.0.1:5023"


class ClientError(Exception):
    """A failure to show as one line, with the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_FAILED, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8") or "null")


class NodeClient:
    """Talks to one node's REST API (``/v1/...``)."""

    def __init__(
        self,
        node: str | None = None,
        token: str | None = None,
        cacert: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        address = node or os.environ.get("MOTEY_ADDR") or DEFAULT_NODE
        self.cacert = cacert or os.environ.get("MOTEY_CACERT") or None
        if "://" not in address:
            address = ("https://" if self.cacert else "http://") + address
        parsed = urllib.parse.urlsplit(address)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ClientError(f"invalid node address {address!r} (use http[s]://HOST[:PORT])", 2)
        if parsed.port is None:
            address = f"{parsed.scheme}://{parsed.netloc}:5023{parsed.path}"
        self.base = address.rstrip("/")
        self.token = token or os.environ.get("MOTEY_TOKEN") or None
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self.base.startswith("https://"):
            try:
                self._context = ssl.create_default_context(cafile=self.cacert)
            except (OSError, ssl.SSLError) as exc:
                raise ClientError(f"cannot use CA certificate {self.cacert}: {exc}", 2) from exc

    # -- requests ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 304),
        timeout: float | None = None,
    ) -> Reply:
        """One call; a status outside ``ok`` raises ClientError with the node's message."""
        response = self._open(method, path, body, content_type, timeout)
        with response:
            reply = Reply(response.status, dict(response.headers), response.read())
        if reply.status not in ok:
            raise self._error(reply)
        return reply

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def stream_lines(
        self, path: str, timeout: float | None = None, opened: Any = None
    ) -> Iterator[str]:
        """The lines of a Server-Sent Events response as they arrive; ``opened`` (an
        Event) is set once the node has answered 200."""
        response = self._open("GET", path, None, None, timeout, accept="text/event-stream")
        if response.status != 200:
            with response:
                raise self._error(Reply(response.status, dict(response.headers), response.read()))
        if opened is not None:
            opened.set()
        with response:
            while True:
                line = response.readline()
                if not line:
                    return
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")

    def sse(
        self, path: str, timeout: float | None = None, opened: Any = None
    ) -> Iterator[tuple[str, str]]:
        """``(event, data)`` of every Server-Sent Event (data lines joined by newlines);
        comments and retry hints skipped."""
        kind = "message"
        data: list[str] = []
        for line in self.stream_lines(path, timeout=timeout, opened=opened):
            if not line:
                if data:
                    yield kind, "\n".join(data)
                kind, data = "message", []
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)

    def events(
        self, timeout: float | None = None, opened: Any = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(kind, data)`` of every event of ``/v1/events``."""
        for kind, data in self.sse("/v1/events", timeout=timeout, opened=opened):
            parsed = _parse_json(data)
            if isinstance(parsed, dict):
                yield kind, parsed

    # -- plumbing ------------------------------------------------------------------
    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        timeout: float | None,
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(  # noqa: S310 - the URL is the operator's node
                req, timeout=timeout or self.timeout, context=self._context
            )
        except urllib.error.HTTPError as exc:
            return exc  # an answer with an error status; the caller reads it
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError):
                hint = " (set MOTEY_CACERT to the cell's CA certificate)"
                raise ClientError(
                    f"TLS to {self.base} failed: {reason}{hint}", EXIT_UNREACHABLE
                ) from exc
            raise ClientError(
                f"node {self.base} is unreachable: {reason}", EXIT_UNREACHABLE
            ) from exc
        except TimeoutError as exc:
            raise ClientError(f"node {self.base} did not answer in time", EXIT_UNREACHABLE) from exc
        except (ConnectionError, OSError) as exc:
            raise ClientError(f"node {self.base} is unreachable: {exc}", EXIT_UNREACHABLE) from exc

    def _error(self, reply: Reply) -> ClientError:
        try:
            data = reply.json()
            message = data.get("message") if isinstance(data, dict) else None
        except ValueError:
            message = None
        message = message or reply.body.decode("utf-8", errors="replace").strip()[:300]
        if reply.status == 401:
            why = "set --token or MOTEY_TOKEN" if not self.token else "the token was refused"
            return ClientError(
                f"not authenticated at {self.base} ({why}): {message}", EXIT_AUTH, 401
            )
        if reply.status == 403:
            return ClientError(
                f"not allowed at {self.base} (the token's role may not do this): {message}",
                EXIT_AUTH,
                403,
            )
        code = EXIT_INPUT if reply.status in (400, 413, 415) else EXIT_FAILED
        return ClientError(f"{message} (HTTP {reply.status})", code, reply.status)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
