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

#: A hardware event on the ZeroMQ IPC socket: a capability list whose entries may say
#: ``"action": "add"`` or ``"remove"`` (read for the ``capabilityevent`` topic; the
#: ``add_capability``/``remove_capability`` topics say it themselves).
CAPABILITY_EVENT_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 256,
    "items": {
        "type": "object",
        "required": ["capability", "capability_type"],
        "properties": {
            **CAPABILITY_LIST_SCHEMA["items"]["properties"],
            "action": {"enum": ["add", "remove"]},
        },
    },
}
