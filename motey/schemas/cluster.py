"""Schemas of the messages nodes exchange: discovery presence and node-to-node requests.

Every message from another node crosses a trust boundary, so each is checked here
before any field is used; the wire formats themselves are described in docs/cluster.md.
"""

from __future__ import annotations

from typing import Any

from motey.models.node import NodeLifecycle, NodeReachability
from motey.schemas.capability import CAPABILITY_LIST_SCHEMA

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
        "capabilities": CAPABILITY_LIST_SCHEMA,
        "timestamp": {"type": "number"},
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
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
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

#: The extended (version 2) capability reply: what placement needs to compare nodes.
DESCRIPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["capabilities"],
    "properties": {
        "version": {"type": "integer"},
        "node_id": {"type": ["string", "null"], "pattern": NODE_ID_PATTERN},
        "name": {"type": ["string", "null"], "maxLength": 255},
        "lifecycle": {"enum": [p.value for p in NodeLifecycle]},
        "load": {"type": ["number", "null"]},
        "capabilities": CAPABILITY_LIST_SCHEMA,
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
