"""JSON schemas for every message that crosses a boundary, and one way to check them."""

from motey.schemas.validation import validate

__all__ = ["validate"]
