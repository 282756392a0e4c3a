"""Schema of capability lists (REST, ZeroMQ IPC and node-to-node replies)."""

from __future__ import annotations

from typing import Any

#: A capability name: words of letters, digits and ``_.:/-``, separated by single spaces
#: (the original accepted any text, and ``test capability`` was in its examples), at
#: most 128 characters. Requirements in blueprints use the same names.
CAPABILITY_WORD = r"[A-Za-z0-9_.:/-]+"
CAPABILITY_NAME_PATTERN = rf"^(?=.{{1,128}}$){CAPABILITY_WORD}(?: {CAPABILITY_WORD})*$"
#: How errors describe a valid name.
CAPABILITY_NAME_RULE = (
    "letters, digits and _.:/- in words separated by single spaces, at most 128 characters"
)

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
