"""The requirement language of blueprints.

``zigbee`` (present), ``!camera`` (absent), ``arch=arm64`` / ``arch==arm64`` (equal),
``arch!=arm64``, ``memory_mb>=512``, ``memory_mb>512``, ``memory_mb<=4096``,
``memory_mb<4096``. Numbers compare as numbers, everything else as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from motey.errors import ValidationError

_PATTERN = re.compile(
    r"^(?P<neg>!)?(?P<name>[A-Za-z0-9_.:/-]+)(?:(?P<op>==|!=|>=|<=|=|>|<)(?P<value>[A-Za-z0-9_.:/+-]+))?$"
)


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement."""

    name: str
    op: str | None = None
    value: str | None = None
    negated: bool = False

    def __str__(self) -> str:
        text = ("!" if self.negated else "") + self.name
        return text + (f"{self.op}{self.value}" if self.op else "")

    def satisfied_by(self, capabilities: Iterable[dict[str, Any]]) -> bool:
        """Whether a node with these capability entries meets this requirement."""
        entries = [c for c in capabilities if c.get("capability") == self.name]
        if self.negated:
            return not entries
        if not entries:
            return False
        if self.op is None:
            return True
        return any(_compare(e.get("value"), self.op, self.value or "") for e in entries)


def parse_requirement(text: str, field: str = "capabilities") -> Requirement:
    """Parse one requirement or raise a ValidationError naming ``field``."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValidationError(
            f"invalid requirement {text!r} at {field}: use NAME, !NAME or NAME<op>VALUE "
            "with op one of =, ==, !=, >=, <=, >, <",
            field=field,
        )
    op = match.group("op")
    if match.group("neg") and op:
        raise ValidationError(
            f"invalid requirement {text!r} at {field}: '!' cannot be combined with a comparison",
            field=field,
        )
    if op == "=":
        op = "=="
    value = match.group("value")
    if op in (">", "<", ">=", "<=") and _number(value) is None:
        raise ValidationError(
            f"invalid requirement {text!r} at {field}: {op} needs a number", field=field
        )
    return Requirement(match.group("name"), op, value, bool(match.group("neg")))


def unmet(requirements: Iterable[str], capabilities: Iterable[dict[str, Any]]) -> list[str]:
    """The requirements (as written) that these capabilities do not meet."""
    caps = list(capabilities)
    return [r for r in requirements if not parse_requirement(r).satisfied_by(caps)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(actual: Any, op: str, expected: str) -> bool:
    if actual is None:
        return False
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        pair: tuple[Any, Any] = (left, right)
    else:
        pair = (str(actual).lower() if isinstance(actual, bool) else str(actual), expected)
        if op in (">", "<", ">=", "<="):
            return False
    a, b = pair
    return {
        "==": a == b,
        "!=": a != b,
        ">=": a >= b,
        "<=": a <= b,
        ">": a > b,
        "<": a < b,
    }[op]
