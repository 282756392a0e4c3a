"""Schema of a service blueprint (the original's YAML format, extended)."""

from __future__ import annotations

from typing import Any

from motey.schemas.capability import CAPABILITY_WORD

#: A requirement: a plain name (``zigbee``), a negation (``!camera``) or a comparison
#: (``arch=arm64``, ``memory_mb >= 512``, ``model="Pi 4"``); the grammar and its meaning
#: are in ``motey.capabilityengine.requirements``, which must accept these strings (it
#: also checks what a pattern cannot say well: a name's length, numeric comparisons).
_NAME = rf"{CAPABILITY_WORD}(?: {CAPABILITY_WORD})*"
REQUIREMENT_PATTERN = (
    rf"^\s*(?:!\s*{_NAME}|{_NAME}"
    r"(?:\s*(?:==|!=|>=|<=|=|>|<)\s*"
    r"(?:[A-Za-z0-9_.:/+-]{1,256}|\"[^\"]{1,256}\"|'[^']{1,256}'))?)\s*$"
)

#: A Docker image reference, ``[registry[:port]/]path[:tag][@digest]``, as the engine
#: reads it; anything else (``--privileged``, spaces, upper-case paths) is refused with a
#: 400 before it can reach an engine's command line or API.
IMAGE_REFERENCE_PATTERN = (
    r"^(?:(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?/"
    r"|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?:[0-9]{1,5}/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

BLUEPRINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["service_name", "images"],
    "additionalProperties": False,
    "properties": {
        "service_name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        },
        "node_type": {"type": "string", "maxLength": 64},
        "images": {
            "type": "array",
            "minItems": 1,
            "maxItems": 64,
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": IMAGE_REFERENCE_PATTERN,
                    },
                    "engine": {"type": "string", "minLength": 1, "maxLength": 64},
                    "on_disconnect": {"enum": ["keep", "stop"]},
                    "parameters": {"type": "object"},
                    "capabilities": {
                        "type": "array",
                        "maxItems": 64,
                        "items": {
                            "type": "string",
                            "maxLength": 512,
                            "pattern": REQUIREMENT_PATTERN,
                        },
                    },
                },
            },
        },
    },
}
