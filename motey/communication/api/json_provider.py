"""Flask's JSON reading with Motey's depth limit, for every JSON request body."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from motey.schemas.limits import loads_json


class LimitedJSONProvider(DefaultJSONProvider):
    """Refuses bodies nested too deeply before ``json.loads`` can recurse into them.

    ``request.get_json`` reads through this provider, so ``[`` × 50000 is a 400 with a
    message rather than a ``RecursionError`` (500) with a long traceback in the log.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_json(s, "request body")
