"""Schemas of the messages nodes exchange: discovery presence and node-to-node requests.

Every message from another node crosses a trust boundary, so each is checked here
before any field is used; the wire formats themselves are described in docs/cluster.md.
"""

from __future__ import annotations

from typing import Any

from motey.models.node import NodeLifecycle, NodeReachability
from motey.schemas.blueprint import IMAGE_REFERENCE_PATTERN
from motey.schemas.capability import CAPABILITY_LIST_SCHEMA, CAPABILITY_NAME_PATTERN

#: Node ids are UUIDs; the pattern is looser so ids of other implementations still fit,
#: but never contains MQTT wildcards or topic separators.
NODE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

#: Image ids are UUIDs as well; the same caution applies (they end up in Docker labels).
IMAGE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"

_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

PRESENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "id", "ip", "state", "lifecycle"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "id": {"type": "string", "pattern": NODE_ID_PATTERN},
        "ip": {"type": "string", "minLength": 7, "maxLength": 15},
        "name": {"type": ["string", "null"], "maxLength": 255},
        "ports": {
            "type": "object",
            "maxProperties": 32,
            "propertyNames": {"pattern": r"^[a-z_]{1,64}$"},
            "additionalProperties": _PORT,
        },
        "state": {"enum": [s.value for s in NodeReachability]},
        "lifecycle": {"enum": [p.value for p in NodeLifecycle]},
        "version": {"type": ["string", "null"], "maxLength": 64},
        "load": {"type": ["number", "null"], "minimum": 0},
        "images": {"type": ["integer", "null"], "minimum": 0},
        "capabilities": CAPABILITY_LIST_SCHEMA,
        "timestamp": {"type": "number"},
        "curve_key": {"type": ["string", "null"], "minLength": 40, "maxLength": 40},
        "curve_sig": {"type": ["string", "null"], "maxLength": 256},
        "resync": {"type": "boolean"},
    },
}

#: An image sent to a peer for deployment. The original sends ``id`` (possibly empty),
#: ``name``, ``engine``, ``parameters``, ``capabilities`` (a list, or ``{}`` when none)
#: and ``node``; this implementation adds ``service_id`` and ``owner_id``.
DEPLOY_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "id": {
            "anyOf": [
                {"type": "string", "pattern": IMAGE_ID_PATTERN},
                {"type": "string", "maxLength": 0},
                {"type": "null"},
            ]
        },
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": IMAGE_REFERENCE_PATTERN,
        },
        "engine": {"type": ["string", "null"], "maxLength": 64},
        "parameters": {"type": ["object", "null"]},
        "capabilities": {
            "anyOf": [
                {"type": "array", "maxItems": 64, "items": {"type": "string", "maxLength": 256}},
                {"type": "object", "maxProperties": 64},
                {"type": "null"},
            ]
        },
        "node": {"type": ["string", "null", "object"]},
        "service_id": {"type": ["string", "null"], "maxLength": 128},
        "owner_id": {"type": ["string", "null"], "maxLength": 128},
        "owner_ip": {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}$"},
                {"type": "null"},
            ]
        },
        "on_disconnect": {"enum": ["keep", "stop", None]},
    },
}

#: A node back from a cut asks an owner which of its images it may keep running.
CLAIMS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "node_id", "images"],
    "properties": {
        "version": {"type": "integer", "minimum": 2},
        "node_id": {"type": "string", "pattern": NODE_ID_PATTERN},
        "images": {
            "type": "array",
            "maxItems": 1024,
            "items": {"type": "string", "pattern": IMAGE_ID_PATTERN},
        },
    },
}

#: The owner's answer: which images the asking node keeps and which it must stop.
CLAIMS_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["keep", "stop"],
    "properties": {
        "keep": {"type": "array", "items": {"type": "string", "pattern": IMAGE_ID_PATTERN}},
        "stop": {"type": "array", "items": {"type": "string", "pattern": IMAGE_ID_PATTERN}},
    },
}

#: The extended (version 2) form of an image status or terminate request.
IMAGE_REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "id"],
    "properties": {
        "version": {"type": "integer", "minimum": 2},
        "id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
        "engine": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
    },
}

#: An image as the original Motey sends it to the status and terminate repliers: the
#: whole image (``id``, ``name``, ``engine``, ``parameters``, ``capabilities``, ``node``),
#: no ``version``; its ``id`` is the container id the deploy reply gave it.
ORIGINAL_IMAGE_REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
        "engine": {"type": ["string", "null"], "maxLength": 64},
    },
}

#: One entry of a peer's capability reply. The original answers with its TinyDB rows,
#: ``{"capability": ..., "type": ...}``; this implementation says ``capability_type``
#: and adds ``value`` and ``source``. Either key is accepted, and keys nobody knows are
#: ignored, so a peer's reply never has to match this node's own format exactly.
PEER_CAPABILITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["capability"],
    "properties": {
        "capability": {"type": "string", "pattern": CAPABILITY_NAME_PATTERN},
        "capability_type": {"type": ["string", "null"], "maxLength": 128},
        "type": {"type": ["string", "null"], "maxLength": 128},
        "value": {"type": ["string", "number", "boolean", "null"]},
    },
}

#: The capability reply of either form: what placement needs to compare nodes. Entries
#: are checked one by one against :data:`PEER_CAPABILITY_SCHEMA` (a peer's one odd
#: entry must not hide its other capabilities).
DESCRIPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["capabilities"],
    "properties": {
        "version": {"type": "integer"},
        "node_id": {"type": ["string", "null"], "pattern": NODE_ID_PATTERN},
        "name": {"type": ["string", "null"], "maxLength": 255},
        "lifecycle": {"enum": [p.value for p in NodeLifecycle]},
        "load": {"type": ["number", "null"]},
        "images": {"type": ["integer", "null"], "minimum": 0},
        "capabilities": {"type": "array", "maxItems": 256},
    },
}

#: The extended image status reply.
STATUS_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["state"],
    "properties": {
        "state": {"type": "string"},
        "message": {"type": ["string", "null"], "maxLength": 4096},
        "exists": {"type": "boolean"},
        "instance_id": {"type": ["string", "null"], "maxLength": 256},
    },
}

#: A request for an image's output (version 2 only; the original has no such request).
LOGS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "id"],
    "additionalProperties": False,
    "properties": {
        "version": {"type": "integer", "minimum": 2},
        "id": {"type": "string", "pattern": IMAGE_ID_PATTERN},
        "engine": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
        "tail": {"type": ["integer", "null"], "minimum": 0},
        "since": {"type": ["number", "null"], "minimum": 0},
    },
}

#: The reply to a logs request.
LOGS_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["lines"],
    "properties": {
        "version": {"type": "integer"},
        "lines": {"type": "array", "items": {"type": "string"}},
        "next_since": {"type": ["number", "null"]},
        "truncated": {"type": "boolean"},
    },
}

#: A request for the services a node owns (version 2 only).
SERVICES_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version"],
    "additionalProperties": False,
    "properties": {"version": {"type": "integer", "minimum": 2}},
}

#: The reply: who answers and the services it owns (each as on REST, without history).
SERVICES_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "version": {"type": "integer"},
        "node_id": {"type": ["string", "null"], "pattern": NODE_ID_PATTERN},
        "name": {"type": ["string", "null"], "maxLength": 255},
        "ip": {"type": ["string", "null"], "maxLength": 64},
        "truncated": {"type": "boolean"},
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "service_name", "state", "images"],
                "properties": {
                    "id": {"type": "string", "maxLength": 128},
                    "service_name": {"type": "string", "maxLength": 255},
                    "state": {"type": "string", "maxLength": 32},
                    "images": {"type": "array"},
                },
            },
        },
    },
}
