"""REST endpoints. Each view parses, makes one call, and returns JSON."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, request

from motey import __version__
from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.communication.api.access import caller_role
from motey.communication.api.listing import ServiceListing, parse_page, service_entry
from motey.errors import UnsupportedMediaType, ValidationError
from motey.models.service import Service
from motey.node.identity import NodeIdentity
from motey.node.status import NodeStatusMonitor
from motey.orchestrator.cell import CellView
from motey.orchestrator.idempotency import Answer, IdempotentSubmissions
from motey.orchestrator.inter_node_orchestrator import InterNodeOrchestrator
from motey.repositories.node_repository import NodeRepository

YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")
COMPOSE_TYPES = ("application/compose+yaml",)


def _service_json(service: Service) -> dict[str, Any]:
    return service_entry(service, caller_role())


def _yaml_body(types: tuple[str, ...] = YAML_TYPES) -> str:
    if request.mimetype not in types:
        raise UnsupportedMediaType(
            f"content type {request.mimetype or '(none)'!r} is not supported; send the "
            f"blueprint as one of {', '.join(types)}",
            field="Content-Type",
        )
    try:
        return request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"blueprint is not valid UTF-8: {exc}", field="(document)") from exc


def _json_list_body() -> Any:
    if request.mimetype != "application/json":
        raise ValidationError(
            f"content type {request.mimetype or '(none)'!r} is not supported; "
            "send application/json",
            field="Content-Type",
        )
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationError("request body is not valid JSON", field="(document)")
    return data


def service_listing(orchestrator: InterNodeOrchestrator) -> ServiceListing:
    """The cached ``GET /v1/service`` bodies of this orchestrator's services."""
    return ServiceListing(orchestrator.list_services, lambda: orchestrator.book.generation)


def service_blueprint(
    orchestrator: InterNodeOrchestrator,
    cell: CellView | None = None,
    submissions: IdempotentSubmissions | None = None,
    listing: ServiceListing | None = None,
) -> Blueprint:
    """``/v1/service``: deploy, list, inspect and terminate services.

    ``listing`` is shared with the fast path in front of Flask (see ``app.py``); the list
    this view answers is the one that path answers without Flask.
    """
    bp = Blueprint("service", __name__)
    bodies = listing if listing is not None else service_listing(orchestrator)

    @bp.get("/v1/service")
    def list_services() -> Any:
        scope = request.args.get("scope", "node")
        if scope == "cell" and cell is not None:
            return jsonify(cell.list_services())
        if scope != "node":
            raise ValidationError("scope must be node (default) or cell", field="scope")
        body = bodies.body(caller_role(), parse_page(request.args))
        return Response(body, mimetype="application/json")

    @bp.post("/v1/service")
    def create_service() -> Any:
        if request.mimetype in COMPOSE_TYPES:
            text = _yaml_body(COMPOSE_TYPES)
            name = request.args.get("name")

            def create(key: str | None) -> Service:
                return orchestrator.submit_compose(text, name, idempotency_key=key)
        else:
            text = _yaml_body(YAML_TYPES + COMPOSE_TYPES)

            def create(key: str | None) -> Service:
                return orchestrator.submit_blueprint(text, idempotency_key=key)

        key = request.headers.get("Idempotency-Key")
        if key is not None and submissions is not None:
            answer = submissions.submit(text, key, _service_json, create)
        else:
            answer = Answer(201, _service_json(create(None)))
        response = jsonify(answer.body)
        response.status_code = answer.status
        response.headers["Location"] = str(answer.body["links"]["self"])
        if answer.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    @bp.delete("/v1/service")
    def delete_by_blueprint() -> Any:
        services = orchestrator.terminate_by_blueprint(_yaml_body())
        return jsonify([_service_json(s) for s in services]), 202

    @bp.get("/v1/service/<service_id>")
    def get_service(service_id: str) -> Any:
        return jsonify(_service_json(orchestrator.get_service(service_id)))

    @bp.delete("/v1/service/<service_id>")
    def delete_service(service_id: str) -> Any:
        return jsonify(_service_json(orchestrator.terminate(service_id))), 202

    return bp


def capabilities_blueprint(engine: CapabilityEngine) -> Blueprint:
    """``/v1/capabilities``: this node's capabilities (201 changed, 304 unchanged)."""
    bp = Blueprint("capabilities", __name__)

    @bp.get("/v1/capabilities")
    def list_capabilities() -> Any:
        return jsonify(engine.all())

    @bp.put("/v1/capabilities")
    def add_capabilities() -> Any:
        changed = engine.add(_json_list_body(), source="rest")
        return (jsonify(engine.all()), 201) if changed else Response(status=304)

    @bp.delete("/v1/capabilities")
    def remove_capabilities() -> Any:
        changed = engine.remove(_json_list_body(), source="rest")
        return (jsonify(engine.all()), 201) if changed else Response(status=304)

    return bp


def nodes_blueprint(
    nodes: NodeRepository,
    status: NodeStatusMonitor,
    identity: NodeIdentity,
    capabilities: CapabilityEngine,
    image_count: Callable[[], int] | None = None,
) -> Blueprint:
    """``/v1/nodes``, ``/v1/nodestatus`` and ``/v1/node`` (this node's lifecycle)."""
    bp = Blueprint("nodes", __name__)

    def self_entry() -> dict[str, Any]:
        node = identity.as_node(capabilities.all())
        sample = status.snapshot()
        if sample.get("load_average") and sample["cpu"].get("count"):
            node.load = round(sample["load_average"][0] / sample["cpu"]["count"], 4)
        if image_count is not None:
            node.images = image_count()
        entry = node.to_dict()
        entry["self"] = True
        entry["lifecycle_reason"] = identity.lifecycle_reason
        return entry

    @bp.get("/v1/nodes")
    def list_nodes() -> Any:
        others = []
        for node in nodes.all():
            if node.id == identity.id or (node.id is None and node.ip == identity.ip):
                continue
            entry = node.to_dict()
            entry["self"] = False
            others.append(entry)
        return jsonify([self_entry(), *others])

    @bp.get("/v1/nodestatus")
    def node_status() -> Any:
        body = status.snapshot()
        body.update(
            {
                "id": identity.id,
                "name": identity.name,
                "ip": identity.ip,
                "lifecycle": identity.lifecycle.value,
                "lifecycle_reason": identity.lifecycle_reason,
            }
        )
        return jsonify(body)

    @bp.get("/v1/node")
    def get_node() -> Any:
        entry = self_entry()
        entry["security_mode"] = identity.security_mode
        return jsonify(entry)

    @bp.put("/v1/node")
    def set_node() -> Any:
        if request.mimetype != "application/json":
            raise UnsupportedMediaType("send application/json", field="Content-Type")
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("lifecycle"), str):
            raise ValidationError(
                'body must be {"lifecycle": PHASE, "reason": TEXT}', field="lifecycle"
            )
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise ValidationError(
                "reason must be a string of at most 500 characters", field="reason"
            )
        identity.set_lifecycle(data["lifecycle"], reason or "set over REST")
        return jsonify(self_entry())

    return bp


def meta_blueprint() -> Blueprint:
    """``/v1`` (links to everything) and ``/v1/openapi.json``."""
    bp = Blueprint("meta", __name__)

    @bp.get("/v1")
    def api_index() -> Any:
        return jsonify(
            {
                "version": __version__,
                "links": {
                    "services": "/v1/service",
                    "capabilities": "/v1/capabilities",
                    "nodes": "/v1/nodes",
                    "nodestatus": "/v1/nodestatus",
                    "node": "/v1/node",
                    "openapi": "/v1/openapi.json",
                    "events": "/v1/events",
                    "whoami": "/v1/whoami",
                    "tokens": "/v1/tokens",
                },
            }
        )

    @bp.get("/v1/openapi.json")
    def openapi() -> Any:
        text = (
            resources.files("motey.communication.api").joinpath("openapi.yaml").read_text("utf-8")
        )
        spec = yaml.safe_load(text)
        spec["info"]["version"] = __version__
        return jsonify(spec)

    return bp
