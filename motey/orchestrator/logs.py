"""An image's output, read from whichever node runs it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from motey.errors import NotFoundError, UnprocessableError
from motey.models.image import Image
from motey.orchestrator.cluster import ClusterGateway
from motey.repositories.service_repository import ServiceRepository
from motey.val.plugin import MAX_LOG_LINES, LogChunk


class LogReader:
    """Reads and follows the logs of the images of the services this node owns.

    Following polls the running node for lines after the last one seen, the same way for
    this node and for a peer, so a followed image that moves is followed to its new node.
    """

    def __init__(
        self, services: ServiceRepository, gateway: ClusterGateway, poll_interval: float = 0.5
    ) -> None:
        self._services = services
        self._gateway = gateway
        self._poll = poll_interval

    def image(self, service_id: str, image_id: str) -> Image:
        """The placed image ``image_id`` of service ``service_id`` (or a 404/422 error)."""
        service = self._services.get(service_id)
        if service is None:
            raise NotFoundError(f"no service with id {service_id!r}", field="id")
        for image in service.images:
            if image.id == image_id:
                if not (image.node or image.node_id):
                    raise UnprocessableError(
                        f"image {image.name!r} runs on no node (state {image.state.value})",
                        field="image_id",
                    )
                return image
        known = ", ".join(f"{i.id} ({i.name})" for i in service.images)
        raise NotFoundError(
            f"service {service_id} has no image {image_id!r} (it has: {known})", field="image_id"
        )

    def read(self, service_id: str, image_id: str, tail: int | None = None) -> LogChunk:
        """The last ``tail`` lines (all, up to the limits, when ``None``)."""
        tail = None if tail is None else max(0, min(tail, MAX_LOG_LINES))
        return self._gateway.logs(self.image(service_id, image_id), tail=tail)

    def follow(
        self, service_id: str, image_id: str, tail: int | None, stop: threading.Event
    ) -> Iterator[LogChunk]:
        """The last ``tail`` lines, then every new line until ``stop`` is set.

        Yields an empty chunk on every poll, so the caller can check its own limits.
        """
        chunk = self.read(service_id, image_id, tail if tail is not None else 100)
        since = chunk.next_since
        yield chunk
        while not stop.wait(self._poll):
            image = self.image(service_id, image_id)
            chunk = self._gateway.logs(image, tail=None, since=since or None)
            if chunk.next_since is not None:
                since = chunk.next_since
            yield chunk
