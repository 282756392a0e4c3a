"""Node-to-node request and reply formats (ZeroMQ REQ/REP, one socket per kind).

The original Motey's formats stay valid in both directions; the extensions are chosen so
that an original node still understands what it receives:

capabilities
    Request: any text (the original sends ``""``). Reply: JSON list of capability
    entries; the original's are its TinyDB rows ``{"capability", "type"}``, this
    implementation's ``{"capability", "capability_type"[, "value", "source"]}``.
    Extension: the request ``{"version": 2}`` is answered with a JSON object carrying
    ``node_id``, ``name``, ``lifecycle``, ``load`` and ``capabilities``.
deploy
    Request: the image as a JSON object (``id``, ``name``, ``engine``, ``parameters``,
    ``capabilities``, ``node``). Reply: the container id as text (``""`` from an
    original node that could not start it). The original keeps that container id as
    the image's id from then on.
image logs, services
    Not in the original: an original node does not listen on their ports, and a request
    to it ends after the client's timeout. Request: ``{"version": 2, "id", "engine",
    "tail", "since"}`` respectively ``{"version": 2}``. Reply: ``{"lines", "next_since",
    "truncated"}`` respectively ``{"node_id", "name", "ip", "services", "truncated"}``.
claims (new, no original counterpart)
    Request: ``{"version": 2, "node_id": ..., "images": [image ids]}`` — a node back from
    a cut asks the owner which of the images it runs it may keep. Reply:
    ``{"keep": [...], "stop": [...]}``; an image moved elsewhere meanwhile is in ``stop``.
status, terminate
    Request: the whole image as JSON, as in deploy, with the container id as ``id``
    (the original's form; a bare id is read too). Reply: the state name (``RUNNING``),
    respectively ``true``/``false`` (whether an instance was removed). Extension: the
    request ``{"version": 2, "id": ..., "engine": ...}`` is answered with a JSON object.

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

import logbook

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
    LOGS_REPLY_SCHEMA,
    LOGS_REQUEST_SCHEMA,
    ORIGINAL_IMAGE_REF_SCHEMA,
    PEER_CAPABILITY_SCHEMA,
    SERVICES_REPLY_SCHEMA,
    SERVICES_REQUEST_SCHEMA,
    STATUS_REPLY_SCHEMA,
)
from motey.schemas.limits import loads_json
from motey.schemas.validation import validate
from motey.val.plugin import MAX_LOG_LINES, InstanceStatus, LogChunk

log = logbook.Logger(__name__)

#: A request or reply larger than this is refused (the socket drops the peer).
MAX_MESSAGE_BYTES = 1024 * 1024

#: Protocol version of the extended forms.
VERSION = 2

#: The engine of a request that names none: the original knew only Docker.
DEFAULT_ENGINE = "docker"

#: The owner recorded for an image a peer sent without ``owner_id`` (an original node,
#: which keeps the service's record itself): never this node, so a restart of this node
#: does not take the container for an orphan of its own and remove it.
UNKNOWN_OWNER = "unknown"

_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")


class RequestKind(enum.Enum):
    """The four request kinds; the value is the ``[ZEROMQ]`` key of the replier's port."""

    CAPABILITIES = "capabilities_replier"
    DEPLOY = "deploy_image_replier"
    STATUS = "image_status_replier"
    TERMINATE = "image_terminate_replier"
    LOGS = "image_logs_replier"
    SERVICES = "services_replier"
    CLAIMS = "image_claims_replier"

    @property
    def label(self) -> str:
        """How logs and errors name the request."""
        return {
            RequestKind.CAPABILITIES: "capability",
            RequestKind.DEPLOY: "deploy image",
            RequestKind.STATUS: "image status",
            RequestKind.TERMINATE: "terminate image",
            RequestKind.LOGS: "image logs",
            RequestKind.SERVICES: "services",
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
    """Parse after the depth check, so nested brackets never reach ``json.loads``."""
    return loads_json(text, what)


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
    message = (
        str(data.get("message") or kind)[:2000] or "the node answered an error without a reason"
    )
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, MoteyError)):
        cls = CommunicationError
    field = data.get("field")
    return cls(message, field=field if isinstance(field, str) else None)


def _maybe_error(text: str) -> None:
    if text.startswith("{"):
        try:
            data = loads_json(text, "reply")
        except ValidationError:
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
        data = loads_json(_text(raw, "capability request") or "null", "capability request")
    except ValidationError:
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
            for k in ("node_id", "name", "ip", "lifecycle", "load", "images", "capabilities")
        }
    )
    return _dump(body)


def decode_capability_reply(raw: bytes) -> dict[str, Any]:
    """A node description from either reply form.

    An original node answers with a bare list of its TinyDB rows (``capability`` and
    ``type``); it has no lifecycle, so it is taken to be operating, and its load is
    unknown (``None``). Entries come back as ``{"capability", "capability_type"[,
    "value"]}`` whichever key the peer used; an entry this node cannot read is left out
    (and logged) rather than making the whole node look silent.
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
        "images": data.get("images"),
        "capabilities": _peer_capabilities(data["capabilities"]),
    }


def _peer_capabilities(entries: list[Any]) -> list[dict[str, Any]]:
    """A peer's capability entries in this node's shape; unreadable ones are skipped."""
    result: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        try:
            validate(entry, PEER_CAPABILITY_SCHEMA, f"capability reply entry [{index}]")
        except ValidationError as exc:
            log.info("ignored a peer's capability: {}", exc.message)
            continue
        kind = entry.get("capability_type") or entry.get("type") or "unknown"
        normalized: dict[str, Any] = {"capability": entry["capability"], "capability_type": kind}
        if entry.get("value") is not None:
            normalized["value"] = entry["value"]
        result.append(normalized)
    return result


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
    It sends no ``owner_id`` either: the image is then owned by :data:`UNKNOWN_OWNER`.
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
        owner_id=data.get("owner_id") or UNKNOWN_OWNER,
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
    for a node that only speaks the original formats, the whole image as the original
    sends it, its ``id`` being the instance id the node's deploy reply gave."""
    if not extended:
        return _dump(
            {
                "id": image.instance_id or image.id,
                "name": image.name,
                "engine": image.engine,
                "parameters": image.parameters,
                "capabilities": list(image.capabilities),
                "node": image.node,
            }
        )
    return _dump({"version": VERSION, "id": image.id, "engine": image.engine})


def decode_image_ref(raw: bytes) -> ImageRef:
    """The image a status or terminate request names.

    Three forms: the extended object (``version`` 2), the original's whole image (an
    object without ``version``, whose ``id`` is usually the container id its deploy
    request was answered with), and a bare id (what earlier versions of this
    implementation sent to nodes without presence).
    """
    text = _text(raw, "image request").strip()
    if text.startswith("{"):
        data = _json(text, "image request")
        if isinstance(data, dict) and "version" not in data:
            validate(data, ORIGINAL_IMAGE_REF_SCHEMA, "image request")
            return ImageRef(data["id"], data.get("engine") or DEFAULT_ENGINE)
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


# -- image logs --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogsRequest:
    """Which image's output a peer asks for, and how much of it."""

    ref: ImageRef
    tail: int | None = None
    since: float | None = None


def encode_logs_request(image: Image, tail: int | None, since: float | None) -> bytes:
    return _dump(
        {"version": VERSION, "id": image.id, "engine": image.engine, "tail": tail, "since": since}
    )


def decode_logs_request(raw: bytes) -> LogsRequest:
    data = _json(_text(raw, "logs request"), "logs request")
    validate(data, LOGS_REQUEST_SCHEMA, "logs request")
    tail = data.get("tail")
    return LogsRequest(
        ImageRef(data["id"], data.get("engine") or DEFAULT_ENGINE, VERSION),
        None if tail is None else min(int(tail), MAX_LOG_LINES),
        data.get("since"),
    )


def encode_logs_reply(chunk: LogChunk) -> bytes:
    """The lines; the oldest are dropped until the reply fits the message limit."""
    lines = list(chunk.lines)
    truncated = chunk.truncated
    body = {"version": VERSION, "lines": lines, "next_since": chunk.next_since}
    encoded = _dump({**body, "truncated": truncated})
    while len(encoded) > MAX_MESSAGE_BYTES - 1024 and lines:
        del lines[: max(1, len(lines) // 4)]
        truncated = True
        encoded = _dump({**body, "lines": lines, "truncated": truncated})
    return encoded


def decode_logs_reply(raw: bytes) -> LogChunk:
    text = _text(raw, "logs reply").strip()
    _maybe_error(text)
    data = _json(text, "logs reply")
    validate(data, LOGS_REPLY_SCHEMA, "logs reply")
    return LogChunk(list(data["lines"]), data.get("next_since"), bool(data.get("truncated")))


# -- services ----------------------------------------------------------------------------


def encode_services_request() -> bytes:
    return _dump({"version": VERSION})


def decode_services_request(raw: bytes) -> None:
    data = _json(_text(raw, "services request"), "services request")
    validate(data, SERVICES_REQUEST_SCHEMA, "services request")


def encode_services_reply(description: dict[str, Any], services: list[dict[str, Any]]) -> bytes:
    """The services without their history; the newest are kept if they do not all fit."""
    listed = [{k: v for k, v in s.items() if k != "history"} for s in services]
    body: dict[str, Any] = {
        "version": VERSION,
        "node_id": description.get("node_id"),
        "name": description.get("name"),
        "ip": description.get("ip"),
        "truncated": False,
        "services": listed,
    }
    encoded = _dump(body)
    while len(encoded) > MAX_MESSAGE_BYTES - 1024 and body["services"]:
        body["services"] = body["services"][max(1, len(body["services"]) // 4) :]
        body["truncated"] = True
        encoded = _dump(body)
    return encoded


def decode_services_reply(raw: bytes) -> dict[str, Any]:
    text = _text(raw, "services reply").strip()
    _maybe_error(text)
    data = _json(text, "services reply")
    if not isinstance(data, dict):
        raise ValidationError("services reply is not a JSON object")
    validate(data, SERVICES_REPLY_SCHEMA, "services reply")
    return dict(data)


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
