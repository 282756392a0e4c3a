"""A capability of a node: something an image may require (a dongle, a GPU, a protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capability:
    """One capability entry; ``source`` says who asserted it (rest, config, ipc, ...)."""

    capability: str
    capability_type: str
    source: str = "rest"
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The original's wire shape, extended by ``source`` and ``value``."""
        data: dict[str, Any] = {
            "capability": self.capability,
            "capability_type": self.capability_type,
            "source": self.source,
        }
        if self.value is not None:
            data["value"] = self.value
        return data
