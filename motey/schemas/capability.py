"""Schema of capability lists (REST, ZeroMQ IPC and node-to-node replies)."""

from __future__ import annotations

from typing import Any

CAPABILITY_NAME_PATTERN = r"^[A-Za-z0-9_.:/-]{1,128}$"

CAPABILITY_LIST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 256,
    "items": {
        "type": "object",
        "required": ["capability", "capability_type"],
        "properties": {
            "capability": {"type": "string", "pattern": CAPABILITY_NAME_PATTERN},
            "capability_type": {"type": "string", "minLength": 1, "maxLength": 128},
            "value": {"type": ["string", "number", "boolean"]},
        },
    },
}
