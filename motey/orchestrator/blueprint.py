"""Turning a YAML blueprint into a validated, not yet stored, :class:`Service`."""

from __future__ import annotations

import time
import uuid
from typing import Any

import yaml

from motey.capabilityengine.requirements import parse_requirement, yaml_quote_hint
from motey.errors import ValidationError
from motey.models.image import Image, ImageState
from motey.models.service import Service, ServiceState
from motey.schemas.blueprint import BLUEPRINT_SCHEMA
from motey.schemas.limits import safe_load_yaml
from motey.schemas.validation import validate

#: Blueprints larger than this are refused before parsing (mistakes); alias bombs and
#: deep nesting are refused by :func:`~motey.schemas.limits.safe_load_yaml`.
MAX_BLUEPRINT_BYTES = 256 * 1024


def load_blueprint(text: str) -> dict[str, Any]:
    """Parse and schema-check a YAML blueprint; errors name the line or the field."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BLUEPRINT_BYTES:
        raise ValidationError(
            f"blueprint is larger than {MAX_BLUEPRINT_BYTES // 1024} KiB", field="(document)"
        )
    try:
        data = safe_load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = yaml_quote_hint(text)
        raise ValidationError(f"invalid YAML{where}: {problem}{hint}", field="(document)") from exc
    if not isinstance(data, dict):
        raise ValidationError(
            "invalid blueprint: (document): must be a mapping with service_name and images",
            field="(document)",
        )
    _check_requirements(data)
    validate(data, BLUEPRINT_SCHEMA, "blueprint")
    return data


def _check_requirements(data: dict[str, Any]) -> None:
    """Parse requirements before the schema, whose pattern error would only quote a regex."""
    images = data.get("images")
    for i, image in enumerate(images if isinstance(images, list) else []):
        requirements = image.get("capabilities") if isinstance(image, dict) else None
        for j, requirement in enumerate(requirements if isinstance(requirements, list) else []):
            parse_requirement(requirement, field=f"images[{i}].capabilities[{j}]")


def service_from_blueprint(
    data: dict[str, Any], owner_id: str, owner_ip: str | None = None
) -> Service:
    """A fresh service (state INITIAL) with new ids for it and each of its images."""
    service_id = str(uuid.uuid4())
    now = time.time()
    images = [
        Image(
            id=str(uuid.uuid4()),
            name=entry["name"],
            engine=entry.get("engine") or "docker",
            parameters=dict(entry.get("parameters") or {}),
            capabilities=list(entry.get("capabilities") or []),
            state=ImageState.INITIAL,
            service_id=service_id,
            owner_id=owner_id,
            owner_ip=owner_ip,
            on_disconnect=entry.get("on_disconnect") or "keep",
        )
        for entry in data["images"]
    ]
    return Service(
        id=service_id,
        service_name=data["service_name"],
        images=images,
        node_type=data.get("node_type"),
        state=ServiceState.INITIAL,
        created_at=now,
        updated_at=now,
        history=[{"at": now, "state": ServiceState.INITIAL.value, "message": "accepted"}],
    )
