"""What a blueprint's Docker ``parameters`` may hold, value by value.

Every value is checked against its type here, when the blueprint is posted, so that
``ports: {abc: xyz}``, ``labels: {1: 2}`` or ``mem_limit: -1`` get a 400 naming the
field instead of being stored and failing later inside Docker. Whether a well-formed
value is *allowed* (host namespaces, binds, capabilities, ...) is the blueprint policy's
question (:mod:`motey.policy`), not this schema's.
"""

from __future__ import annotations

from typing import Any

_TEXT = {"type": "string", "maxLength": 4096}
_STRING_LIST = {"type": "array", "maxItems": 256, "items": _TEXT}
_COMMAND = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 4096}, _STRING_LIST]}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
#: ``123``, ``512m``, ``1g``: what docker-py's ``parse_bytes`` reads, never negative.
_BYTES = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^[1-9][0-9]{0,15}[bkmgBKMG]?$"},
    ]
}
_IPV4 = r"^(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$"
_NAMESPACE_MODE = {
    "type": "string",
    "pattern": r"^(?:host|private|shareable|none|container:[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$",
}

#: Container port as Docker writes it: ``80``, ``80/tcp``, ``53/udp``.
PORT_KEY_PATTERN = r"^[0-9]{1,5}(?:/(?:tcp|udp|sctp))?$"
#: Label keys (reverse-DNS style) and environment variable names.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,254}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,254}$"

DOCKER_PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 64,
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"},
        "command": _COMMAND,
        "entrypoint": _COMMAND,
        "environment": {
            "anyOf": [
                {
                    "type": "object",
                    "maxProperties": 256,
                    "propertyNames": {"type": "string", "pattern": ENV_NAME_PATTERN},
                    "additionalProperties": {
                        "anyOf": [
                            {"type": "string", "maxLength": 4096},
                            {"type": "number"},
                            {"type": "boolean"},
                            {"type": "null"},
                        ]
                    },
                },
                {
                    "type": "array",
                    "maxItems": 256,
                    "items": {
                        "type": "string",
                        "maxLength": 4096,
                        "pattern": r"^[A-Za-z_][A-Za-z0-9_.-]{0,254}(?:=[\s\S]*)?$",
                    },
                },
            ]
        },
        "ports": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"type": "string", "pattern": PORT_KEY_PATTERN},
            "additionalProperties": {
                "anyOf": [
                    {"type": "null"},
                    _PORT,
                    {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 2,
                        "items": [{"type": "string", "pattern": _IPV4}, _PORT],
                    },
                    {"type": "array", "minItems": 1, "maxItems": 16, "items": _PORT},
                ]
            },
        },
        "volumes": {
            "anyOf": [
                {
                    "type": "object",
                    "maxProperties": 64,
                    "propertyNames": {"type": "string", "minLength": 1, "maxLength": 4096},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["bind"],
                        "additionalProperties": False,
                        "properties": {
                            "bind": {"type": "string", "pattern": r"^/", "maxLength": 4096},
                            "mode": {"enum": ["ro", "rw"]},
                        },
                    },
                },
                {
                    "type": "array",
                    "maxItems": 64,
                    "items": {
                        "type": "string",
                        "maxLength": 4096,
                        "pattern": r"^[^:]+:/[^:]*(?::(?:ro|rw))?$",
                    },
                },
            ]
        },
        "devices": {
            "type": "array",
            "maxItems": 64,
            "items": {
                "type": "string",
                "maxLength": 4096,
                "pattern": r"^/[^:]*(?::/[^:]*(?::[rwm]{1,3})?)?$",
            },
        },
        "working_dir": {"type": "string", "pattern": r"^/", "maxLength": 4096},
        "user": {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,32}(?::[A-Za-z0-9_.-]{1,32})?$"},
            ]
        },
        "hostname": {"type": "string", "pattern": _HOSTNAME},
        "network_mode": {
            "type": "string",
            "pattern": r"^(?:container:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        },
        "pid_mode": _NAMESPACE_MODE,
        "ipc_mode": _NAMESPACE_MODE,
        "restart_policy": {
            "type": "object",
            "required": ["Name"],
            "additionalProperties": False,
            "properties": {
                "Name": {"enum": ["", "no", "on-failure", "always", "unless-stopped"]},
                "MaximumRetryCount": {"type": "integer", "minimum": 0, "maximum": 1000},
            },
        },
        "labels": {
            "type": "object",
            "maxProperties": 128,
            "propertyNames": {"type": "string", "pattern": LABEL_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": 4096},
        },
        "mem_limit": _BYTES,
        "shm_size": _BYTES,
        "cpu_shares": {"type": "integer", "minimum": 2, "maximum": 262144},
        "privileged": {"type": "boolean"},
        "cap_add": {
            "type": "array",
            "maxItems": 64,
            "items": {"type": "string", "pattern": r"^(?:CAP_)?[A-Z_]{1,32}$"},
        },
        "tty": {"type": "boolean"},
        "stdin_open": {"type": "boolean"},
        "extra_hosts": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"type": "string", "pattern": _HOSTNAME},
            "additionalProperties": {"type": "string", "pattern": _IPV4},
        },
        "dns": {"type": "array", "maxItems": 8, "items": {"type": "string", "pattern": _IPV4}},
        # The original's Docker plugin took ``detach`` (its own sample blueprint sets it);
        # Motey always detaches, so it is accepted and ignored.
        "detach": {"type": "boolean"},
    },
}

#: Parameters that are accepted for compatibility but never passed to Docker.
IGNORED_PARAMETERS = frozenset({"detach"})

#: The parameters a blueprint may use (``containers.run`` keyword arguments).
ALLOWED_PARAMETERS = tuple(sorted(DOCKER_PARAMETERS_SCHEMA["properties"]))
