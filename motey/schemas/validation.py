"""Schema validation that names the offending field."""

from __future__ import annotations

import threading
from typing import Any

import jsonschema

from motey.errors import ValidationError
from motey.schemas.capability import CAPABILITY_NAME_PATTERN, CAPABILITY_NAME_RULE

#: Patterns whose failure is explained in words rather than by printing the regex.
_PATTERN_RULES = {CAPABILITY_NAME_PATTERN: f"is not a capability name ({CAPABILITY_NAME_RULE})"}


#: How many compiled validators :func:`compiled` keeps (the schemas are module constants,
#: a few dozen; the bound only guards against a caller that builds schemas per call).
_MAX_COMPILED = 256


class _Compiled:
    """Draft 7 validators by schema identity: building one costs more than a request.

    Building a validator per node-to-node reply was 257 µs of a 430 µs request. Keyed
    by ``id(schema)`` with the schema kept referenced, so the id cannot be reused while
    the entry lives. A pure memo of a pure function, not shared state.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[dict[str, Any], jsonschema.Draft7Validator]] = {}

    def get(self, schema: dict[str, Any]) -> jsonschema.Draft7Validator:
        entry = self._entries.get(id(schema))
        if entry is not None and entry[0] is schema:
            return entry[1]
        validator = jsonschema.Draft7Validator(schema)
        with self._lock:
            if len(self._entries) >= _MAX_COMPILED:
                self._entries.pop(next(iter(self._entries)))
            self._entries[id(schema)] = (schema, validator)
        return validator


_compiled = _Compiled()


def compiled(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    """The validator for ``schema``, built once."""
    return _compiled.get(schema)


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
    validator = compiled(schema)
    if validator.is_valid(instance):
        return
    errors = sorted(validator.iter_errors(instance), key=lambda e: (-len(e.path), e.message))
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
