"""A Docker Compose file as a blueprint: each Compose service becomes one image.

Only what Motey can carry out is taken; any other key is refused with an error that names
every such key (``services.web.build``), never dropped silently: a Compose file that
deploys "successfully" without its networks or healthchecks would mislead its author.
The mapping is documented in docs/compose.md.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from motey.capabilityengine.requirements import parse_requirement
from motey.errors import ValidationError
from motey.orchestrator.blueprint import MAX_BLUEPRINT_BYTES
from motey.schemas.blueprint import BLUEPRINT_SCHEMA
from motey.schemas.validation import validate

#: Top-level keys understood; ``version`` is informational in Compose and ignored.
TOP_LEVEL_KEYS = frozenset({"version", "name", "services"})

#: Keys of a Compose service that map onto an image.
SERVICE_KEYS = frozenset(
    {
        "image",
        "command",
        "entrypoint",
        "environment",
        "ports",
        "volumes",
        "devices",
        "labels",
        "working_dir",
        "user",
        "hostname",
        "container_name",
        "restart",
        "x-motey-capabilities",
        "deploy",
    }
)

_RESTART = {"no": None, "always": "always", "unless-stopped": "unless-stopped"}
_CONSTRAINT = re.compile(
    r"^\s*node\.labels\.([A-Za-z0-9_.:/-]{1,128})\s*(==|!=)\s*(\S{1,256})\s*$"
)
_PORT = re.compile(
    r"^(?:(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?P<host>\d{1,5}):)?(?P<container>\d{1,5})"
    r"(?:/(?P<proto>tcp|udp|sctp))?$"
)
_PROJECT = re.compile(r"[^A-Za-z0-9_.-]+")


def compose_to_blueprint(text: str, name: str | None = None) -> dict[str, Any]:
    """The blueprint (as :func:`~motey.orchestrator.blueprint.load_blueprint` returns it)
    for a Compose file; ``name`` is the service name when the file has no ``name:``."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BLUEPRINT_BYTES:
        raise ValidationError(
            f"Compose file is larger than {MAX_BLUEPRINT_BYTES // 1024} KiB", field="(document)"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"invalid YAML{where}: {problem}", field="(document)") from exc
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValidationError(
            "invalid Compose file: it needs a services: mapping", field="services"
        )
    refused = [str(k) for k in data if k not in TOP_LEVEL_KEYS]
    services = data["services"]
    if not services:
        raise ValidationError("invalid Compose file: services is empty", field="services")
    for key, body in services.items():
        if not isinstance(body, dict):
            raise ValidationError(
                f"invalid Compose file: services.{key} must be a mapping", field=f"services.{key}"
            )
        refused.extend(f"services.{key}.{k}" for k in body if k not in SERVICE_KEYS)
        deploy = body.get("deploy")
        if isinstance(deploy, dict):
            refused.extend(
                f"services.{key}.deploy.{k}" for k in deploy if k != "placement"
            )
            placement = deploy.get("placement")
            if isinstance(placement, dict):
                refused.extend(
                    f"services.{key}.deploy.placement.{k}"
                    for k in placement
                    if k != "constraints"
                )
    if refused:
        raise ValidationError(
            "Compose keys Motey cannot honour (remove them or deploy a blueprint): "
            + ", ".join(refused),
            field=refused[0],
            details={"unsupported": refused},
        )
    service_name = data.get("name") or name
    if not isinstance(service_name, str) or not service_name.strip():
        raise ValidationError(
            "a Compose file needs a top-level name: (or the ?name= query parameter)",
            field="name",
        )
    blueprint = {
        "service_name": _PROJECT.sub("-", service_name.strip()).strip("-.") or "compose",
        "images": [_image(str(key), body) for key, body in services.items()],
    }
    validate(blueprint, BLUEPRINT_SCHEMA, "blueprint")
    return blueprint


def _image(key: str, body: dict[str, Any]) -> dict[str, Any]:
    where = f"services.{key}"
    image = body.get("image")
    if not isinstance(image, str) or not image:
        raise ValidationError(
            f"{where}.image is required (Motey runs images; it does not build)",
            field=f"{where}.image",
        )
    params: dict[str, Any] = {}
    for compose_key, param in (
        ("command", "command"),
        ("entrypoint", "entrypoint"),
        ("working_dir", "working_dir"),
        ("user", "user"),
        ("hostname", "hostname"),
        ("container_name", "name"),
    ):
        if compose_key in body:
            params[param] = body[compose_key]
    if "environment" in body:
        params["environment"] = _environment(body["environment"], f"{where}.environment")
    labels = _mapping(body.get("labels") or {}, f"{where}.labels")
    labels["com.docker.compose.service"] = key
    params["labels"] = labels
    if "ports" in body:
        params["ports"] = _ports(body["ports"], f"{where}.ports")
    if "volumes" in body:
        params["volumes"] = _volumes(body["volumes"], f"{where}.volumes")
    if "devices" in body:
        devices = body["devices"]
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise ValidationError(
                f"{where}.devices must be a list of HOST:CONTAINER[:PERMISSIONS]",
                field=f"{where}.devices",
            )
        params["devices"] = list(devices)
    if "restart" in body:
        restart = str(body["restart"])
        if restart.startswith("on-failure"):
            _, _, count = restart.partition(":")
            params["restart_policy"] = {
                "Name": "on-failure",
                "MaximumRetryCount": int(count) if count.isdigit() else 0,
            }
        elif restart in _RESTART:
            if _RESTART[restart]:
                params["restart_policy"] = {"Name": _RESTART[restart]}
        else:
            raise ValidationError(
                f"{where}.restart: unknown policy {restart!r}", field=f"{where}.restart"
            )
    return {
        "name": image,
        "engine": "docker",
        "parameters": params,
        "capabilities": _requirements(body, where),
    }


def _requirements(body: dict[str, Any], where: str) -> list[str]:
    result: list[str] = []
    caps = body.get("x-motey-capabilities") or []
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ValidationError(
            f"{where}.x-motey-capabilities must be a list of requirements",
            field=f"{where}.x-motey-capabilities",
        )
    result.extend(caps)
    placement = (body.get("deploy") or {}).get("placement") or {}
    constraints = placement.get("constraints") or []
    if not isinstance(constraints, list):
        raise ValidationError(
            f"{where}.deploy.placement.constraints must be a list",
            field=f"{where}.deploy.placement.constraints",
        )
    for index, constraint in enumerate(constraints):
        field = f"{where}.deploy.placement.constraints[{index}]"
        match = _CONSTRAINT.match(str(constraint))
        if match is None:
            raise ValidationError(
                f"{field}: {constraint!r} cannot be honoured; Motey maps only "
                "node.labels.NAME == VALUE and node.labels.NAME != VALUE to capabilities",
                field=field,
            )
        label, op, value = match.groups()
        value = value.strip("'\"")
        if value.lower() == "true":
            result.append(label if op == "==" else f"!{label}")
        elif value.lower() == "false":
            result.append(f"!{label}" if op == "==" else label)
        else:
            result.append(f"{label}{'=' if op == '==' else '!='}{value}")
    for index, requirement in enumerate(result):
        parse_requirement(requirement, field=f"{where}.capabilities[{index}]")
    return result


def _environment(value: Any, field: str) -> dict[str, str]:
    env = _mapping(value, field)
    return env


def _mapping(value: Any, field: str) -> dict[str, str]:
    """A Compose ``KEY: value`` mapping or ``KEY=value`` list as a string mapping."""
    result: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None:
                raise ValidationError(
                    f"{field}.{k} has no value (taking it from the deploying shell is not "
                    "possible on a remote node)",
                    field=f"{field}.{k}",
                )
            result[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
        return result
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str) or "=" not in item:
                raise ValidationError(
                    f"{field}[{index}] must be KEY=VALUE", field=f"{field}[{index}]"
                )
            k, _, v = item.partition("=")
            result[k] = v
        return result
    raise ValidationError(f"{field} must be a mapping or a list of KEY=VALUE", field=field)


def _ports(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a list", field=field)
    ports: dict[str, Any] = {}
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(item, dict):
            extra = set(item) - {"target", "published", "protocol", "host_ip", "mode"}
            if extra or "target" not in item or item.get("mode", "host") not in ("host", "ingress"):
                raise ValidationError(
                    f"{where}: only target, published, protocol and host_ip are honoured",
                    field=where,
                )
            container = f"{int(item['target'])}/{item.get('protocol') or 'tcp'}"
            published = item.get("published")
            host: Any = int(published) if published is not None else None
            if item.get("host_ip") and host is not None:
                host = [str(item["host_ip"]), host]
            ports[container] = host
            continue
        match = _PORT.match(str(item))
        if match is None:
            raise ValidationError(
                f"{where}: {item!r} is not [IP:]HOST:CONTAINER[/PROTOCOL] (ranges are not "
                "supported)",
                field=where,
            )
        container = f"{int(match['container'])}/{match['proto'] or 'tcp'}"
        host = int(match["host"]) if match["host"] else None
        if match["ip"] and host is not None:
            host = [match["ip"], host]
        ports[container] = host
    return ports


def _volumes(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a list", field=field)
    result: list[str] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(item, dict):
            extra = set(item) - {"type", "source", "target", "read_only"}
            if extra or item.get("type", "bind") not in ("bind", "volume"):
                raise ValidationError(
                    f"{where}: only type (bind, volume), source, target and read_only are "
                    "honoured",
                    field=where,
                )
            if not item.get("source") or not item.get("target"):
                raise ValidationError(f"{where}: source and target are required", field=where)
            mode = "ro" if item.get("read_only") else "rw"
            result.append(f"{item['source']}:{item['target']}:{mode}")
            continue
        parts = str(item).split(":")
        if len(parts) < 2 or len(parts) > 3 or not all(parts[:2]):
            raise ValidationError(
                f"{where}: {item!r} must be SOURCE:TARGET[:ro|rw] (anonymous volumes are not "
                "supported)",
                field=where,
            )
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            raise ValidationError(f"{where}: mode must be ro or rw", field=where)
        result.append(":".join(parts if len(parts) == 3 else [*parts, "rw"]))
    return result
