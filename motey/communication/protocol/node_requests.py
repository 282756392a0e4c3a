"""Node-to-node request and reply formats (ZeroMQ REQ/REP, one socket per kind).

The original Motey's formats stay valid in both directions; the extensions are chosen so
that an original node still understands what it receives:

capabilities
    Request: any text. Reply: JSON list of ``{"capability", "capability_type"}``.
    Extension: the request ``{"version": 2}`` is answered with a JSON object carrying
    ``node_id``, ``name``, ``lifecycle``, ``load`` and ``capabilities``.
deploy
    Request: the image as a JSON object (``id``, ``name``, ``engine``, ``parameters``,
    ``capabilities``, ``node``). Reply: the container id as text.
claims (new, no original counterpart)
    Request: ``{"version": 2, "node_id": ..., "images": [image ids]}`` — a node back from
    a cut asks the owner which of the images it runs it may keep. Reply:
    ``{"keep": [...], "stop": [...]}``; an image moved elsewhere meanwhile is in ``stop``.
status, terminate
    Request: the image id as text. Reply: the state name (``RUNNING``), respectively
    ``true``/``false`` (whether an instance was removed). Extension: the request
    ``{"version": 2, "id": ..., "engine": ...}`` is answered with a JSON object.

Errors, for every kind: a JSON object ``{"error": <kind>, "message": <text>}``. A
successful reply of the original formats never starts with ``{``, so the two can
always be told apart.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from motey import errors
from motey.errors import CommunicationError, MoteyError, ValidationError
from motey.models.image import Image, ImageState
from motey.models.node import NodeLifecycle
from motey.schemas.cluster import (
    CLAIMS_REPLY_SCHEMA,
    CLAIMS_REQUEST_SCHEMA,
    DEPLOY_REQUEST_SCHEMA,
    DESCRIPTION_SCHEMA,
    IMAGE_ID_PATTERN,
    IMAGE_REF_SCHEMA,
    STATUS_REPLY_SCHEMA,
)
from motey.schemas.validation import validate
from motey.val.plugin import InstanceStatus

#: A request or reply larger than this is refused (the socket drops the peer).
MAX_MESSAGE_BYTES = 1024 * 1024

#: Protocol version of the extended forms.
VERSION = 2

#: The engine of a request that names none: the original knew only Docker.
DEFAULT_ENGINE = "docker"

_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")


class RequestKind(enum.Enum):
    """The four request kinds; the value is the ``[ZEROMQ]`` key of the replier's port."""

    CAPABILITIES = "capabilities_replier"
    DEPLOY = "deploy_image_replier"
    STATUS = "image_status_replier"
    TERMINATE = "image_terminate_replier"
    CLAIMS = "image_claims_replier"

    @property
    def label(self) -> str:
        """How logs and errors name the request."""
        return {
            RequestKind.CAPABILITIES: "capability",
            RequestKind.DEPLOY: "deploy image",
            RequestKind.STATUS: "image status",
            RequestKind.TERMINATE: "terminate image",
            RequestKind.CLAIMS: "image claims",
        }[self]


@dataclass(frozen=True)
class ImageRef:
    """An image named in a status or terminate request."""

    id: str
    engine: str = DEFAULT_ENGINE
    version: int = 1

    def as_image(self) -> Image:
        return Image(id=self.id, name="", engine=self.engine)


# -- helpers ---------------------------------------------------------------------------


def _text(raw: bytes, what: str) -> str:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValidationError(f"{what} of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{what} is not UTF-8 text") from None


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def encode_error(exc: BaseException) -> bytes:
    """The error reply for any failure; its ``error`` names the kind of failure."""
    if isinstance(exc, MoteyError):
        body: dict[str, Any] = {"error": type(exc).__name__, "message": exc.message}
        if exc.field is not None:
            body["field"] = exc.field
    else:
        body = {"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
    return _dump(body)


def error_from_reply(data: Any) -> MoteyError | None:
    """The Motey error an error reply stands for, or ``None`` for any other reply.

    Known kinds keep their class (a refusal because of the lifecycle stays a
    :class:`~motey.errors.NodeNotOperational`); anything else is a CommunicationError.
    """
    if not isinstance(data, dict) or "error" not in data:
        return None
    kind = str(data.get("error"))
    message = str(data.get("message") or kind)[:2000]
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, MoteyError)):
        cls = CommunicationError
    field = data.get("field")
    return cls(message, field=field if isinstance(field, str) else None)


def _maybe_error(text: str) -> None:
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return
        error = error_from_reply(data)
        if error is not None:
            raise error


# -- capabilities ----------------------------------------------------------------------


def encode_capability_request() -> bytes:
    """The extended capability request (an original node answers it with its list)."""
    return _dump({"version": VERSION})


def decode_capability_request(raw: bytes) -> int:
    """The reply format a capability request asks for: 1 (original list) or 2 (object).

    The original accepts any text, so nothing here is an error: a request that is not a
    JSON object with ``version`` >= 2 gets the original's list.
    """
    try:
        data = json.loads(_text(raw, "capability request") or "null")
    except (ValidationError, ValueError):
        return 1
    if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] >= 2:
        return VERSION
    return 1


def encode_capability_reply(version: int, description: dict[str, Any]) -> bytes:
    """The original's list for version 1, the node description for version 2."""
    if version < VERSION:
        return _dump(list(description["capabilities"]))
    body: dict[str, Any] = {"version": VERSION}
    body.update(
        {
            k: description.get(k)
            for k in ("node_id", "name", "ip", "lifecycle", "load", "capabilities")
        }
    )
    return _dump(body)


def decode_capability_reply(raw: bytes) -> dict[str, Any]:
    """A node description from either reply form.

    An original node answers with a bare list; it has no lifecycle, so it is taken to be
    operating, and its load is unknown (``None``).
    """
    data = _json(_text(raw, "capability reply"), "capability reply")
    error = error_from_reply(data)
    if error is not None:
        raise error
    if isinstance(data, list):
        data = {"capabilities": data, "lifecycle": NodeLifecycle.OPERATE.value}
    validate(data, DESCRIPTION_SCHEMA, "capability reply")
    return {
        "node_id": data.get("node_id"),
        "name": data.get("name"),
        "lifecycle": data.get("lifecycle") or NodeLifecycle.OPERATE.value,
        "load": data.get("load"),
        "capabilities": list(data["capabilities"]),
    }


# -- deploy ----------------------------------------------------------------------------


def encode_deploy_request(image: Image) -> bytes:
    """The image as the original sends it, plus the ids that label its container."""
    return _dump(
        {
            "id": image.id,
            "name": image.name,
            "engine": image.engine,
            "parameters": image.parameters,
            "capabilities": list(image.capabilities),
            "node": image.node,
            "service_id": image.service_id,
            "owner_id": image.owner_id,
            "owner_ip": image.owner_ip,
            "on_disconnect": image.on_disconnect,
        }
    )


def decode_deploy_request(raw: bytes) -> Image:
    """The image a peer asks this node to run, or :class:`ValidationError`.

    The original may send an empty ``id`` and ``{}`` for no capabilities; such an image
    gets a fresh id (its container needs one as a label) and an empty requirement list.
    """
    data = _json(_text(raw, "deploy request"), "deploy request")
    validate(data, DEPLOY_REQUEST_SCHEMA, "deploy request")
    capabilities = data.get("capabilities") or []
    if isinstance(capabilities, dict):
        capabilities = [str(k) for k in capabilities]
    node = data.get("node")
    return Image(
        id=data.get("id") or str(uuid.uuid4()),
        name=data["name"],
        engine=data.get("engine") or DEFAULT_ENGINE,
        parameters=dict(data.get("parameters") or {}),
        capabilities=list(capabilities),
        node=node if isinstance(node, str) else None,
        service_id=data.get("service_id"),
        owner_id=data.get("owner_id"),
        owner_ip=data.get("owner_ip"),
        on_disconnect=data.get("on_disconnect") or "keep",
    )


def encode_deploy_reply(instance_id: str) -> bytes:
    """The original's reply: the container id as text."""
    return instance_id.encode("utf-8")


def decode_deploy_reply(raw: bytes) -> str:
    """The instance id a peer started, or the error it answered with."""
    text = _text(raw, "deploy reply").strip()
    _maybe_error(text)
    if not text:
        # The original answers '' when it could not start the image, without a reason.
        raise CommunicationError("the node could not start the image (it gave no reason)")
    if not _INSTANCE_ID.match(text):
        raise ValidationError(f"deploy reply {text[:64]!r} is not an instance id")
    return text


# -- status and terminate ----------------------------------------------------------------


def encode_image_ref(image: Image, extended: bool = True) -> bytes:
    """A status/terminate request: extended (names the engine, asks for an object) or,
    for a node that only speaks the original formats, the bare image id."""
    if not extended:
        return image.id.encode("utf-8")
    return _dump({"version": VERSION, "id": image.id, "engine": image.engine})


def decode_image_ref(raw: bytes) -> ImageRef:
    """The image a status or terminate request names: a bare id or the extended object."""
    text = _text(raw, "image request").strip()
    if text.startswith("{"):
        data = _json(text, "image request")
        validate(data, IMAGE_REF_SCHEMA, "image request")
        return ImageRef(data["id"], data.get("engine") or DEFAULT_ENGINE, VERSION)
    if not _IMAGE_ID.match(text):
        raise ValidationError(f"image request {text[:64]!r} is not an image id", field="id")
    return ImageRef(text)


def encode_status_reply(ref: ImageRef, status: InstanceStatus) -> bytes:
    """The state name for an original request, the full status for an extended one."""
    if ref.version < VERSION:
        return status.state.value.encode("ascii")
    return _dump(
        {
            "state": status.state.value,
            "message": status.message,
            "exists": status.exists,
            "instance_id": status.instance_id,
        }
    )


def decode_status_reply(raw: bytes) -> InstanceStatus:
    """An :class:`InstanceStatus` from a bare state name or the extended object."""
    text = _text(raw, "status reply").strip()
    _maybe_error(text)
    if text.startswith("{"):
        data = _json(text, "status reply")
        validate(data, STATUS_REPLY_SCHEMA, "status reply")
    else:
        data = {"state": text}
    try:
        state = ImageState(data["state"].upper())
    except ValueError:
        raise ValidationError(
            f"status reply names no image state: {data['state'][:64]!r}"
        ) from None
    return InstanceStatus(
        state=state,
        message=str(data.get("message") or ""),
        exists=bool(data.get("exists", True)),
        instance_id=data.get("instance_id"),
    )


def encode_terminate_reply(ref: ImageRef, terminated: bool) -> bytes:
    """``true``/``false`` for an original request, ``{"terminated": ...}`` otherwise."""
    if ref.version < VERSION:
        return b"true" if terminated else b"false"
    return _dump({"terminated": terminated})


def decode_terminate_reply(raw: bytes) -> bool:
    """Whether the peer removed an instance; any non-error reply counts as done.

    The original's terminate replier sends no defined reply; what it sends is taken as
    success because the request itself is idempotent.
    """
    text = _text(raw, "terminate reply").strip()
    _maybe_error(text)
    if text.startswith("{"):
        data = _json(text, "terminate reply")
        return bool(isinstance(data, dict) and data.get("terminated"))
    return text.lower() not in ("false", "0")


# -- claims ------------------------------------------------------------------------------


def encode_claims_request(node_id: str, image_ids: list[str]) -> bytes:
    """Ask an owner which of ``image_ids`` the node ``node_id`` may keep running."""
    return _dump({"version": VERSION, "node_id": node_id, "images": list(image_ids)})


def decode_claims_request(raw: bytes) -> tuple[str, list[str]]:
    """The asking node's id and the image ids it runs, or :class:`ValidationError`."""
    data = _json(_text(raw, "claims request"), "claims request")
    validate(data, CLAIMS_REQUEST_SCHEMA, "claims request")
    return str(data["node_id"]), [str(i) for i in data["images"]]


def encode_claims_reply(keep: list[str], stop: list[str]) -> bytes:
    return _dump({"keep": list(keep), "stop": list(stop)})


def decode_claims_reply(raw: bytes) -> dict[str, list[str]]:
    """``{"keep": [...], "stop": [...]}`` from an owner, or the error it answered with."""
    text = _text(raw, "claims reply").strip()
    _maybe_error(text)
    data = _json(text, "claims reply")
    validate(data, CLAIMS_REPLY_SCHEMA, "claims reply")
    return {"keep": list(data["keep"]), "stop": list(data["stop"])}
