"""The typed contract every VAL plugin fulfils.

A plugin wraps one engine (Docker, ...) and is the only code that talks to it. Motey
finds the containers it started through labels, so every method that looks an instance
up does it by the Motey image id, never by a name the user chose.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from motey.errors import UnprocessableError
from motey.models.image import Image, ImageState

LABEL_NODE_ID = "motey.node_id"
LABEL_SERVICE_ID = "motey.service_id"
LABEL_IMAGE_ID = "motey.image_id"
LABEL_OWNER_ID = "motey.owner_id"
#: The owner's address, for a node that has no node list yet (broker away after a restart).
LABEL_OWNER_IP = "motey.owner_ip"
#: ``keep`` or ``stop``: what the node does with the instance while cut off from its owner.
LABEL_ON_DISCONNECT = "motey.on_disconnect"


@dataclass(frozen=True)
class InstanceStatus:
    """What an engine says of one image's instance.

    ``known`` is ``False`` when nobody could say: the node runs, but does not answer
    status requests (an original Motey); ``state`` is then the one the asker knew.
    """

    state: ImageState
    message: str = ""
    exists: bool = True
    instance_id: str | None = None
    known: bool = True


@dataclass(frozen=True)
class LogChunk:
    """Output of an instance: the newest lines (oldest first) and where to go on from.

    ``next_since`` is the engine timestamp (seconds) just after the last line, to ask
    for what follows; ``truncated`` says older lines were left out to stay in the limits.
    """

    lines: list[str] = field(default_factory=list)
    next_since: float | None = None
    truncated: bool = False


#: Most lines one log request returns.
MAX_LOG_LINES = 10000
#: Most bytes of output one log request returns (the newest are kept).
MAX_LOG_BYTES = 512 * 1024


@dataclass(frozen=True)
class InstanceInfo:
    """One instance found on the engine by its Motey labels."""

    instance_id: str
    labels: dict[str, str] = field(default_factory=dict)
    state: ImageState = ImageState.RUNNING

    @property
    def image_id(self) -> str | None:
        return self.labels.get(LABEL_IMAGE_ID)

    @property
    def service_id(self) -> str | None:
        return self.labels.get(LABEL_SERVICE_ID)


class InstanceEvents(Protocol):
    """An engine's stream of changes to this node's instances (see :meth:`VALPlugin.events`).

    Iterating yields the Motey image id of each instance whose state may have changed
    and ends when the engine ends the stream (or :meth:`close` was called); ``close``
    may be called from another thread and wakes the iterating one at once.
    """

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class VALPlugin(abc.ABC):
    """Base class of an engine plugin.

    ``settings`` is the config section named after the engine (``[DOCKER]`` for
    ``docker``), ``node_id`` the id this node labels its instances with.
    """

    #: The engine name blueprints use (``engine: docker``).
    name: str = ""

    def __init__(self, settings: dict[str, Any], node_id: str) -> None:
        self.settings = settings
        self.node_id = node_id

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to the engine; raise :class:`~motey.errors.EngineError` if it is absent."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections; idempotent."""

    @abc.abstractmethod
    def capabilities(self) -> list[dict[str, Any]]:
        """Capabilities this engine gives the node (e.g. ``docker``)."""

    @abc.abstractmethod
    def validate_parameters(self, parameters: dict[str, Any], field: str) -> None:
        """Raise ValidationError (naming ``field``) for parameters the engine cannot take."""

    @abc.abstractmethod
    def ensure_image(self, name: str) -> None:
        """Make sure the image is present (pulling it if allowed) or raise ImageUnavailable."""

    @abc.abstractmethod
    def instantiate(self, image: Image, labels: dict[str, str]) -> str:
        """Start the image (idempotent by the image id label) and return the instance id.

        An image the engine does not have raises :class:`~motey.errors.ImageUnavailable`
        (never a pull): the manager then calls :meth:`ensure_image`, which pulls only
        where that is allowed, and tries once more.
        """

    @abc.abstractmethod
    def status(self, image_id: str) -> InstanceStatus:
        """The current state of the instance of this Motey image id."""

    @abc.abstractmethod
    def terminate(self, image_id: str) -> bool:
        """Stop and remove the instance; ``False`` when there was none. Idempotent."""

    @abc.abstractmethod
    def list_instances(self) -> list[InstanceInfo]:
        """Every instance this node (``node_id``) started on the engine."""

    def events(self) -> InstanceEvents | None:
        """A stream of changes to this node's instances, for a state cache
        (:class:`motey.val.states.InstanceStates`); ``None`` when the engine has none
        (every status then asks the engine). Raises when the engine cannot be reached.
        """
        return None

    def logs(self, image_id: str, tail: int | None = None, since: float | None = None) -> LogChunk:
        """The instance's output: the last ``tail`` lines (all when ``None``), only those
        at or after ``since`` (engine time, seconds) when given, within
        :data:`MAX_LOG_LINES` and :data:`MAX_LOG_BYTES`.

        Optional: an engine without logs keeps this default, which says so.
        """
        raise UnprocessableError(f"engine {self.name!r} cannot show an instance's output")
