"""``GET /v1/service`` without Flask's request dispatch: a WSGI layer in front of the app.

The list is the one request a dashboard polls. Its body is already kept encoded per
change (:class:`~motey.communication.api.listing.ServiceListing`), so what remained per
request was Flask itself — request and response objects, URL routing, the hooks, the
context push and pop — which on this machine costs as much as cheroot's whole request
(Flask answering a constant body runs at about half of bare cheroot; docs/scale.md).

:class:`FastListing` answers the common case itself, with the same semantics as the
Flask route, in the same order:

1. the access decision (:meth:`AccessControl.check`: token, role, failure brake), made
   once — a request handed on to Flask carries it in the environ
   (:data:`~motey.communication.api.access.DECISION_KEY`), so a wrong token is counted
   once, never twice;
2. ``?scope=`` and ``?offset=&limit=&fields=``, parsed as werkzeug parses them (first
   value of a repeated parameter wins);
3. the cached body for the caller's role (a viewer sees environment values as ``***``),
   with the headers Flask sends: ``Content-Type``, ``Content-Length`` and, when
   ``[WEBSERVER] cors_origins`` is set, flask-cors's headers computed by flask-cors's
   own function from the same options; HEAD gets the headers without the body.

Everything else goes to Flask unchanged: other paths and methods, a denial (401/403/429),
a bad parameter (400), ``scope=cell``, a query string that does not decode, any failure
while rendering. Those answers are Flask's own, so they cannot drift; the answers this
layer makes itself are compared byte for byte with Flask's in
``tests/test_fast_listing.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import EnvironHeaders

from motey.communication.api.access import DECISION_KEY, Decision
from motey.communication.api.listing import Page, ServiceListing, parse_page
from motey.errors import MoteyError
from motey.security.access import AccessControl, AccessDenied

#: The one path this layer answers.
PATH = "/v1/service"

#: Parsed query strings kept (a dashboard asks the same few again and again).
MAX_QUERIES = 256

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Extra response headers for a request (the CORS headers), from its environ and method.
HeaderSource = Callable[[dict[str, Any], str], list[tuple[str, str]]]


class FastListing:
    """WSGI middleware: ``GET``/``HEAD /v1/service`` from the cached body, the rest to ``app``."""

    def __init__(
        self,
        app: WSGIApp,
        listing: ServiceListing,
        access: AccessControl | None = None,
        extra_headers: HeaderSource | None = None,
    ) -> None:
        #: The Flask app's own WSGI callable: everything this layer does not answer.
        self.app = app
        self._listing = listing
        self._access = access
        self._extra_headers = extra_headers
        self._pages: dict[str, Page | None] = {"": Page()}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO") != PATH or (method != "GET" and method != "HEAD"):
            return self.app(environ, start_response)
        role: str | None = None
        if self._access is not None:
            try:
                principal = self._access.check(
                    method,
                    PATH,
                    environ.get("HTTP_AUTHORIZATION"),
                    environ.get("REMOTE_ADDR") or "",
                )
            except AccessDenied as exc:
                environ[DECISION_KEY] = Decision(exc.principal, exc)
                return self.app(environ, start_response)
            environ[DECISION_KEY] = Decision(principal)
            role = principal.role if principal is not None else None
        page = self._page(environ.get("QUERY_STRING") or "")
        if page is None:
            return self.app(environ, start_response)
        try:
            body = self._listing.body(role, page)
        except Exception:
            # Flask renders again and answers the failure its own way (and logs it).
            return self.app(environ, start_response)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if self._extra_headers is not None:
            headers.extend(self._extra_headers(environ, method))
        start_response("200 OK", headers)
        return [body] if method == "GET" else []

    def _page(self, query: str) -> Page | None:
        """The page a query string asks for; ``None`` when Flask must answer it."""
        try:
            return self._pages[query]
        except KeyError:
            pass
        page = _parse(query)
        with self._lock:
            if len(self._pages) >= MAX_QUERIES:
                self._pages.pop(next(iter(self._pages)))
            self._pages[query] = page
        return page


def _parse(query: str) -> Page | None:
    try:
        # What werkzeug's ``Request.args`` does with the environ's QUERY_STRING.
        pairs = parse_qsl(
            query.encode("latin-1").decode(), keep_blank_values=True, errors="werkzeug.url_quote"
        )
    except (UnicodeError, ValueError, LookupError):
        return None
    args: dict[str, str] = {}
    for key, value in pairs:
        args.setdefault(key, value)
    if args.get("scope", "node") != "node":
        return None  # scope=cell, or a bad scope: the view's own answer
    try:
        return parse_page(args)
    except MoteyError:
        return None  # the view's 400


def cors_headers(options: Any) -> HeaderSource:
    """The CORS headers flask-cors's ``after_request`` adds, from the same resolved options.

    ``options`` is what ``flask_cors.core.get_cors_options`` made of the ``CORS(...)``
    arguments; ``get_cors_headers`` is the function flask-cors itself calls per response.
    For a GET or HEAD its answer depends on the ``Origin`` and
    ``Access-Control-Request-Private-Network`` headers only, so it is kept per pair of
    values (a bounded number: both come from the client).
    """
    from flask_cors.core import get_cors_headers

    known: dict[tuple[str | None, str | None, str], list[tuple[str, str]]] = {}

    def headers(environ: dict[str, Any], method: str) -> list[tuple[str, str]]:
        key = (
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"),
            method,
        )
        found = known.get(key)
        if found is None:
            made = get_cors_headers(options, EnvironHeaders(environ), method)
            # ``items()`` without ``multi``: flask-cors adds the first value of each header.
            found = [(name, str(value)) for name, value in made.items()]
            if len(known) < MAX_QUERIES:
                known[key] = found
        return found

    return headers
