"""The requirement language of blueprints (see ``docs/capabilities.md``).

An image lists requirements; every one must hold on the node that runs it:

``zigbee``
    some source asserts ``zigbee`` (the original meaning of a plain name);
``!camera``
    no source asserts ``camera``;
``arch=arm64`` or ``arch==arm64``
    some ``arch`` entry has the value ``arm64``;
``arch!=armv7``
    no ``arch`` entry has the value ``armv7`` (also true without any ``arch``), the exact
    opposite of ``arch=armv7``;
``memory_mb>=512``, ``>``, ``<=``, ``<``
    some ``memory_mb`` entry has a numeric value that compares true; the right-hand side
    must be a number.

Numbers compare as numbers (``512`` equals ``512.0``), everything else as exact,
case-sensitive text. Spaces around the operator are allowed; a value with spaces or
other characters is quoted (``model="Pi 4"``). A name may itself contain single spaces
between its words (``test capability``, ``!test capability``), as the original Motey's
names could.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from motey.errors import ValidationError
from motey.schemas.capability import CAPABILITY_NAME_RULE, CAPABILITY_WORD

OPERATORS = ("==", "!=", ">=", "<=", "=", ">", "<")
_ORDERING = (">", "<", ">=", "<=")
_NAME = rf"{CAPABILITY_WORD}(?: {CAPABILITY_WORD})*"
_MAX_NAME = 128
_VALUE = r"[A-Za-z0-9_.:/+-]{1,256}|\"[^\"]{1,256}\"|'[^']{1,256}'"
_OPS = "|".join(re.escape(op) for op in OPERATORS)
_PATTERN = re.compile(
    rf"^\s*(?:!\s*(?P<neg>{_NAME})|(?P<name>{_NAME})(?:\s*(?P<op>{_OPS})\s*(?P<value>{_VALUE}))?)\s*$"
)
_NEGATED_COMPARISON = re.compile(rf"^\s*!\s*{_NAME}\s*(?:{_OPS})")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# An unquoted YAML scalar starting with "!" is a tag, not a string: `- !camera` fails
# with "could not determine a constructor", `[!camera]` with a parser error.
_UNQUOTED_BANG = re.compile(r"(?m)(?:^\s*-\s+|[\[,]\s*)![A-Za-z0-9_]")


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement: a name, and either negation or a comparison."""

    name: str
    op: str | None = None
    value: str | None = None
    negated: bool = False

    def __str__(self) -> str:
        text = ("!" if self.negated else "") + self.name
        return text + (f"{self.op}{self.value}" if self.op else "")

    def satisfied_by(self, capabilities: Iterable[dict[str, Any]]) -> bool:
        """Whether a node with these capability entries (of any source) meets this."""
        entries = [c for c in capabilities if c.get("capability") == self.name]
        if self.negated:
            return not entries
        if self.op is None:
            return bool(entries)
        expected = self.value or ""
        if self.op == "!=":
            return not any(_compare(e.get("value"), "==", expected) for e in entries)
        return any(_compare(e.get("value"), self.op, expected) for e in entries)


def parse_requirement(text: Any, field: str = "capabilities") -> Requirement:
    """Parse one requirement or raise a :class:`ValidationError` naming ``field``."""
    if not isinstance(text, str):
        raise ValidationError(
            f"invalid requirement at {field}: {text!r} is not a string; write NAME, !NAME "
            "or NAME<op>VALUE (a YAML mapping like 'arch: arm64' is written arch=arm64)",
            field=field,
        )
    match = _PATTERN.match(text)
    if not match:
        if _NEGATED_COMPARISON.match(text):
            reason = "'!' cannot be combined with a comparison (use NAME!=VALUE)"
        else:
            reason = (
                "use NAME, !NAME or NAME<op>VALUE with op one of =, ==, !=, >=, <=, >, <; "
                f"NAME is {CAPABILITY_NAME_RULE}, a VALUE with other characters is quoted"
            )
        raise ValidationError(f"invalid requirement {text!r} at {field}: {reason}", field=field)
    name = match.group("neg") or match.group("name")
    if len(name) > _MAX_NAME:
        raise ValidationError(
            f"invalid requirement {text!r} at {field}: the name is longer than {_MAX_NAME} "
            "characters",
            field=field,
        )
    if match.group("neg"):
        return Requirement(match.group("neg"), negated=True)
    op = match.group("op")
    value = match.group("value")
    if value is not None and value[0] in "\"'":
        value = value[1:-1]
    if op == "=":
        op = "=="
    if op in _ORDERING and _number(value) is None:
        raise ValidationError(
            f"invalid requirement {text!r} at {field}: {op} compares numbers, "
            f"and {value!r} is not a number",
            field=field,
        )
    return Requirement(match.group("name"), op, value)


def unmet(requirements: Iterable[str], capabilities: Iterable[dict[str, Any]]) -> list[str]:
    """The requirements (as written) that these capabilities do not meet."""
    caps = list(capabilities)
    return [r for r in requirements if not parse_requirement(r).satisfied_by(caps)]


def yaml_quote_hint(text: str) -> str:
    """Advice for a YAML error caused by an unquoted ``!NAME`` (a YAML tag), else ``""``."""
    if _UNQUOTED_BANG.search(text):
        return (
            " (a requirement starting with '!' must be quoted in YAML, "
            'e.g. capabilities: ["!camera"])'
        )
    return ""


def _number(value: Any) -> float | None:
    """The numeric value of ``value``, or ``None`` for text ("nan" and "inf" are text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    return float(text) if _NUMBER.match(text) else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(actual: Any, op: str, expected: str) -> bool:
    if actual is None:
        return False
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        a: Any = left
        b: Any = right
    elif op in _ORDERING:
        return False
    else:
        a, b = _text(actual), expected
    return {
        "==": a == b,
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
    }[op]
