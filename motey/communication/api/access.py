"""Access control and audit for the REST API, as Flask hooks around every view.

The decision itself (token, role, rate limit) is :class:`motey.security.access.AccessControl`;
this module only reads the request, answers 401/403/429 as JSON, remembers the caller
for the views (``caller_role``) and writes the audit line of each changing request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from motey.errors import UnsupportedMediaType, ValidationError
from motey.security.access import AccessControl, AccessDenied, Principal
from motey.security.audit import AuditLog
from motey.security.token_admin import TokenAdmin

#: Methods whose requests change something and are therefore audited.
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_ERROR_NAMES = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests"}

#: WSGI environ key under which a layer in front of Flask (the fast listing path) leaves
#: the access decision it already made, so a request it hands on is not decided twice:
#: a second check would count a wrong token twice towards the failure limit. Only
#: server-side code can set an environ key (headers arrive as ``HTTP_*``).
DECISION_KEY = "motey.access_decision"


@dataclass(frozen=True)
class Decision:
    """The outcome of :meth:`AccessControl.check` for one request."""

    principal: Principal | None
    denied: AccessDenied | None = None


def caller() -> Principal | None:
    """Who made the current request (``None`` when no access control is installed)."""
    return g.get("principal")


def caller_role() -> str | None:
    """The current caller's role, for views that show less to weaker roles."""
    principal = caller()
    return principal.role if principal is not None else None


def _denied(exc: AccessDenied) -> Response:
    response = jsonify({"error": _ERROR_NAMES.get(exc.status, "Forbidden"), "message": exc.message})
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="motey"'
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def install_access_control(app: Flask, access: AccessControl, audit: AuditLog | None) -> None:
    """Guard every request of ``app`` with ``access`` and audit the changing ones."""

    @app.before_request
    def authorize() -> ResponseReturnValue | None:
        decided = request.environ.get(DECISION_KEY)
        if not isinstance(decided, Decision):
            try:
                decided = Decision(
                    access.check(
                        request.method,
                        request.path,
                        request.headers.get("Authorization"),
                        request.remote_addr or "",
                    )
                )
            except AccessDenied as exc:
                decided = Decision(exc.principal, exc)
        g.principal = decided.principal
        if decided.denied is not None:
            return _denied(decided.denied)
        return None

    if audit is not None:

        @app.after_request
        def audit_change(response: Response) -> Response:
            if request.method in CHANGING_METHODS:
                principal = caller()
                audit.record(
                    who=principal.name if principal is not None else "(no valid token)",
                    what=f"{request.method} {request.path}",
                    result=response.status_code,
                    origin=request.remote_addr or "",
                    role=principal.role if principal is not None else None,
                    location=response.headers.get("Location"),
                )
            return response

    app.register_blueprint(whoami_blueprint(access))
    app.register_blueprint(
        tokens_blueprint(TokenAdmin(access.store.node_file, access.store.cell_file))
    )


def whoami_blueprint(access: AccessControl) -> Blueprint:
    """``GET /v1/whoami``: the caller's token name and role (what the web client shows)."""
    bp = Blueprint("whoami", __name__)

    @bp.get("/v1/whoami")
    def whoami() -> Any:
        principal = caller()
        return jsonify(
            {
                "name": principal.name if principal else None,
                "role": principal.role if principal else None,
                "source": principal.source if principal else None,
                "mode": access.mode,
            }
        )

    return bp


def tokens_blueprint(admin: TokenAdmin) -> Blueprint:
    """``/v1/tokens``: the admin lists, creates and revokes this node's tokens."""
    bp = Blueprint("tokens", __name__)

    @bp.get("/v1/tokens")
    def list_tokens() -> Any:
        return jsonify(admin.all())

    @bp.post("/v1/tokens")
    def create_token() -> Any:
        if request.mimetype != "application/json":
            raise UnsupportedMediaType("send application/json", field="Content-Type")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError('body must be {"name": NAME, "role": ROLE}', field="(document)")
        record, token = admin.create(data.get("name"), data.get("role"))
        response = jsonify(
            {"name": record.name, "role": record.role, "created": record.created, "token": token}
        )
        response.status_code = 201
        response.headers["Location"] = f"/v1/tokens/{record.name}"
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.delete("/v1/tokens/<name>")
    def revoke_token(name: str) -> Any:
        record = admin.revoke(name)
        return jsonify({"name": record.name, "role": record.role, "revoked": True})

    return bp
