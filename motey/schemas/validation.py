"""Schema validation that names the offending field."""

from __future__ import annotations

from typing import Any

import jsonschema

from motey.errors import ValidationError
from motey.schemas.capability import CAPABILITY_NAME_PATTERN, CAPABILITY_NAME_RULE

#: Patterns whose failure is explained in words rather than by printing the regex.
_PATTERN_RULES = {CAPABILITY_NAME_PATTERN: f"is not a capability name ({CAPABILITY_NAME_RULE})"}


def field_path(path: Any) -> str:
    """Render a jsonschema error path as ``images[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def validate(instance: Any, schema: dict[str, Any], what: str, prefix: str = "") -> None:
    """Raise :class:`ValidationError` naming the first failing field of ``instance``.

    The most specific error (deepest path) is reported, so that a bad image name is
    reported as ``images[0].name`` rather than as "images is not valid". ``prefix``
    is the instance's own place in a larger document (``images[0].parameters``).
    """
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (-len(e.path), e.message))
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors) or errors[0]
    deepest = max(errors, key=lambda e: len(e.absolute_path))
    chosen = deepest if len(deepest.absolute_path) > len(best.absolute_path) else best
    path = field_path(chosen.absolute_path)
    if chosen.validator == "required" and isinstance(chosen.validator_value, list):
        missing = [k for k in chosen.validator_value if k not in (chosen.instance or {})]
        if missing:
            parent = "" if path == "(document)" else f"{path}."
            path = f"{parent}{missing[0]}"
    if prefix:
        path = prefix if path == "(document)" else f"{prefix}.{path}".replace(".[", "[")
    message = chosen.message
    if chosen.validator == "pattern" and chosen.validator_value in _PATTERN_RULES:
        message = f"{chosen.instance!r} {_PATTERN_RULES[chosen.validator_value]}"
    message = message if len(message) <= 300 else message[:300] + "..."
    raise ValidationError(f"invalid {what}: {path}: {message}", field=path)
