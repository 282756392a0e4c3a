"""Motey's exception hierarchy.

Library errors (docker, zmq, tinydb, yaml) are translated into these at the boundary
so that callers handle one family of errors and the REST layer can map each to a status.
"""

from __future__ import annotations

from typing import Any


class MoteyError(Exception):
    """Base of every error Motey raises on purpose."""

    #: HTTP status that the REST layer answers with for this kind of error.
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: what went wrong and, where known, which field."""
        body: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return body


class ConfigError(MoteyError):
    """The configuration file is missing or holds an invalid value."""


class ValidationError(MoteyError):
    """A message that crossed a boundary is malformed or fails its schema."""

    http_status = 400


class UnsupportedMediaType(ValidationError):
    """A request body came with a content type the endpoint does not take."""

    http_status = 415


class UnprocessableError(MoteyError):
    """Well-formed input that cannot be carried out (unknown engine, missing image)."""

    http_status = 422


class NotFoundError(MoteyError):
    """The addressed service, image or node does not exist."""

    http_status = 404


class ConflictError(MoteyError):
    """The request conflicts with the current state (e.g. deleting a stopping service)."""

    http_status = 409


class NodeNotOperational(MoteyError):
    """This node is outside its OPERATE phase and takes no new deployments."""

    http_status = 503


class Busy(MoteyError):
    """A bounded resource (open streams) is used up; the caller may retry later."""

    http_status = 503


class EngineError(MoteyError):
    """A virtualization engine failed to carry out an operation."""

    http_status = 502


class ImageUnavailable(UnprocessableError):
    """The image is not present on the engine and could not be pulled."""


class CommunicationError(MoteyError):
    """Another node did not answer, or answered with an error."""

    http_status = 504


class PeerSilent(CommunicationError):
    """Another node did not answer at all (as opposed to answering with an error)."""


class StorageError(MoteyError):
    """The on-disk database could not be read or written."""


class PolicyError(MoteyError):
    """A blueprint asks for something this node's ``[POLICY]`` does not allow."""

    http_status = 403


class ProtectedCapabilityError(MoteyError):
    """A caller tried to change a capability that the node detects itself."""

    http_status = 403
