"""REST endpoints an operator follows things with: the event stream and an image's logs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from motey.communication.api.streams import StreamService
from motey.errors import ValidationError

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _tail() -> int | None:
    raw = request.args.get("tail")
    if raw in (None, "", "all"):
        return None
    if not raw.isdigit():
        raise ValidationError("tail must be a number of lines or 'all'", field="tail")
    return int(raw)


def _flag(name: str) -> bool:
    raw = (request.args.get(name) or "").lower()
    if raw not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ValidationError(f"{name} must be 1 or 0", field=name)
    return raw in ("1", "true", "yes")


def streams_blueprint(streams: StreamService) -> Blueprint:
    """``/v1/events`` and ``/v1/service/<id>/images/<image_id>/logs``."""
    bp = Blueprint("streams", __name__)

    @bp.get("/v1/events")
    def events() -> Any:
        return Response(streams.events(), mimetype="text/event-stream", headers=_STREAM_HEADERS)

    @bp.get("/v1/service/<service_id>/images/<image_id>/logs")
    def image_logs(service_id: str, image_id: str) -> Any:
        follow = _flag("follow")
        sse = follow and request.accept_mimetypes.best == "text/event-stream"
        body, truncated = streams.logs(service_id, image_id, _tail(), follow, sse)
        headers = {**_STREAM_HEADERS, "X-Motey-Truncated": "1" if truncated else "0"}
        return Response(
            body, mimetype="text/event-stream" if sse else "text/plain", headers=headers
        )

    return bp
