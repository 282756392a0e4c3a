"""Flask application factory for the REST API and the web client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import logbook
from flask import Flask, jsonify, send_from_directory
from flask_cors import CORS
from flask_cors.core import get_cors_options
from werkzeug.exceptions import HTTPException, NotFound

from motey import __version__
from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.communication.api.access import install_access_control
from motey.communication.api.fast_listing import FastListing, cors_headers
from motey.communication.api.json_provider import LimitedJSONProvider
from motey.communication.api.operator_views import streams_blueprint
from motey.communication.api.streams import StreamService
from motey.communication.api.views import (
    capabilities_blueprint,
    meta_blueprint,
    nodes_blueprint,
    service_blueprint,
    service_listing,
)
from motey.errors import MoteyError
from motey.node.identity import NodeIdentity
from motey.node.status import NodeStatusMonitor
from motey.orchestrator.cell import CellView
from motey.orchestrator.idempotency import IdempotentSubmissions
from motey.orchestrator.inter_node_orchestrator import InterNodeOrchestrator
from motey.repositories.node_repository import NodeRepository
from motey.security.access import AccessControl
from motey.security.audit import AuditLog

log = logbook.Logger(__name__)

#: The web client's files and folders that a node serves under ``/``.
WEBCLIENT_ASSETS = frozenset({"index.html", "favicon.svg", "css", "js", "vendor"})

#: Request bodies larger than this are refused with 413 before any parsing.
MAX_CONTENT_LENGTH = 1024 * 1024


def create_app(
    orchestrator: InterNodeOrchestrator,
    capability_engine: CapabilityEngine,
    node_repository: NodeRepository,
    node_status: NodeStatusMonitor,
    identity: NodeIdentity,
    cors_origins: list[str] | None = None,
    webclient_path: str | None = None,
    cell: CellView | None = None,
    streams: StreamService | None = None,
    submissions: IdempotentSubmissions | None = None,
    access: AccessControl | None = None,
    audit: AuditLog | None = None,
    image_count: Callable[[], int] | None = None,
) -> Flask:
    """Build the Flask app with every endpoint bound to the given components."""
    app = Flask("motey", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json = LimitedJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    cors: dict[str, Any] | None = None
    if cors_origins:
        cors = {
            "origins": cors_origins,
            "expose_headers": ["Location", "Idempotent-Replayed", "Retry-After"],
        }
        CORS(app, **cors)
    if access is not None:
        install_access_control(app, access, audit)

    listing = service_listing(orchestrator)
    app.register_blueprint(service_blueprint(orchestrator, cell, submissions, listing))
    if streams is not None:
        app.register_blueprint(streams_blueprint(streams))
    app.register_blueprint(capabilities_blueprint(capability_engine))
    app.register_blueprint(
        nodes_blueprint(node_repository, node_status, identity, capability_engine, image_count)
    )
    app.register_blueprint(meta_blueprint())

    client_dir = Path(webclient_path) if webclient_path else None

    @app.get("/")
    def index() -> Any:
        if client_dir is None or not (client_dir / "index.html").is_file():
            return jsonify(
                {
                    "name": "Motey",
                    "version": __version__,
                    "api": "/v1",
                    "message": "web client not installed on this node",
                }
            )
        return send_from_directory(client_dir, "index.html")

    @app.get("/<path:filename>")
    def webclient_asset(filename: str) -> Any:
        # Only the page's own assets; a source checkout also holds node_modules/, tests/
        # and package files, which a node has no reason to serve.
        top = filename.split("/", 1)[0]
        if client_dir is None or not client_dir.is_dir() or top not in WEBCLIENT_ASSETS:
            raise NotFound()
        return send_from_directory(client_dir, filename)

    @app.errorhandler(MoteyError)
    def handle_motey_error(exc: MoteyError) -> Any:
        if exc.http_status >= 500:
            log.error("request failed: {}", exc.message)
        return jsonify(exc.to_dict()), exc.http_status

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Any:
        body = {"error": exc.name.replace(" ", ""), "message": exc.description}
        response = jsonify(body)
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        log.exception("unexpected error while handling a request: {}", exc)
        return jsonify(
            {"error": "InternalError", "message": "internal error; see the node's log"}
        ), 500

    # The service list, the request a dashboard polls, is answered in front of Flask's
    # dispatch from the same cached body (fast_listing.py, docs/scale.md); Flask's
    # documented way to wrap its WSGI callable in a middleware.
    app.wsgi_app = FastListing(  # type: ignore[method-assign]
        app.wsgi_app,
        listing,
        access,
        cors_headers(get_cors_options(app, cors)) if cors is not None else None,
    )
    return app
