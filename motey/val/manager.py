"""The VALManager: one front for every engine plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import logbook

from motey.errors import EngineError, ImageUnavailable, UnprocessableError, ValidationError
from motey.models.image import Image
from motey.val.plugin import (
    LABEL_IMAGE_ID,
    LABEL_NODE_ID,
    LABEL_ON_DISCONNECT,
    LABEL_OWNER_ID,
    LABEL_OWNER_IP,
    LABEL_SERVICE_ID,
    InstanceInfo,
    InstanceStatus,
    LogChunk,
    VALPlugin,
)

log = logbook.Logger(__name__)


class VALManager:
    """Routes each image operation to the plugin of its engine."""

    #: Seconds :meth:`stop` may take (closing the engine clients); see motey/lifecycle.py.
    STOP_WAIT = 2.0

    def __init__(
        self,
        discover: Callable[[], dict[str, type[VALPlugin]]],
        settings: dict[str, Any],
        node_id: str,
    ) -> None:
        self._discover = discover
        self._settings = settings
        self._node_id = node_id
        self._plugins: dict[str, VALPlugin] = {}
        self._failed: dict[str, str] = {}

    def start(self) -> None:
        """Instantiate and connect every discovered plugin; an absent engine is logged."""
        if self._plugins:
            return
        for name, cls in self._discover().items():
            plugin = cls(dict(self._settings.get(name.upper(), {})), self._node_id)
            try:
                plugin.start()
            except EngineError as exc:
                log.error("VAL plugin {} is unavailable: {}", name, exc.message)
                self._failed[name] = exc.message
                continue
            self._plugins[name] = plugin
            log.info("VAL plugin {} ready", name)

    def stop(self) -> None:
        """Disconnect every plugin; idempotent."""
        for plugin in self._plugins.values():
            try:
                plugin.stop()
            except Exception as exc:  # stopping must go on for the others
                log.warning("VAL plugin {} did not stop cleanly: {}", plugin.name, exc)
        self._plugins.clear()

    @property
    def engines(self) -> list[str]:
        """Names of the engines this node can run images with."""
        return sorted(self._plugins)

    def plugin(self, engine: str) -> VALPlugin:
        """The plugin for ``engine`` or an error that lists what is available."""
        try:
            return self._plugins[engine]
        except KeyError:
            if engine in self._failed:
                raise EngineError(
                    f"engine {engine!r} is unavailable: {self._failed[engine]}"
                ) from None
            known = ", ".join(self.engines) or "none"
            raise UnprocessableError(
                f"unknown engine {engine!r} (this node has: {known})", field="engine"
            ) from None

    def capabilities(self) -> list[dict[str, Any]]:
        """Capabilities that the available engines contribute."""
        caps: list[dict[str, Any]] = []
        for plugin in self._plugins.values():
            caps.extend(plugin.capabilities())
        return caps

    def validate(self, image: Image, field: str) -> None:
        """Check an image's engine and parameters before anything is stored."""
        try:
            plugin = self.plugin(image.engine)
        except UnprocessableError as exc:
            raise UnprocessableError(exc.message, field=f"{field}.engine") from None
        plugin.validate_parameters(image.parameters, f"{field}.parameters")
        if not isinstance(image.parameters, dict):
            raise ValidationError("parameters must be a mapping", field=f"{field}.parameters")

    def ensure_image(self, image: Image) -> None:
        """Make the image available locally (pulling if allowed)."""
        self.plugin(image.engine).ensure_image(image.name)

    def instantiate(self, image: Image) -> str:
        """Start an image with Motey's labels and return the instance id."""
        labels = {
            LABEL_NODE_ID: self._node_id,
            LABEL_SERVICE_ID: image.service_id or "",
            LABEL_IMAGE_ID: image.id,
            LABEL_OWNER_ID: image.owner_id or self._node_id,
            LABEL_ON_DISCONNECT: image.on_disconnect,
            **({LABEL_OWNER_IP: image.owner_ip} if image.owner_ip else {}),
        }
        plugin = self.plugin(image.engine)
        try:
            # The image is almost always there (the owner checked it at POST): asking the
            # engine first cost a call per start; a missing one is fetched and tried again.
            return plugin.instantiate(image, labels)
        except ImageUnavailable:
            plugin.ensure_image(image.name)  # pulls if allowed, else says why not
            return plugin.instantiate(image, labels)

    def status(self, image: Image) -> InstanceStatus:
        """The engine's view of an image's instance."""
        return self.plugin(image.engine).status(image.id)

    def terminate(self, image: Image) -> bool:
        """Stop and remove an image's instance; idempotent."""
        return self.plugin(image.engine).terminate(image.id)

    def logs(self, image: Image, tail: int | None = None, since: float | None = None) -> LogChunk:
        """An image's output on this node (see :meth:`VALPlugin.logs`)."""
        return self.plugin(image.engine).logs(image.id, tail=tail, since=since)

    def list_instances(self) -> dict[str, list[InstanceInfo]]:
        """Every instance this node started, by engine."""
        return {name: plugin.list_instances() for name, plugin in self._plugins.items()}
