"""The REST server: cheroot (a production WSGI server) in a thread that can be stopped."""

from __future__ import annotations

import threading
from typing import Any

import logbook
from cheroot import wsgi
from flask import Flask

from motey.errors import ConfigError

log = logbook.Logger(__name__)


class APIServer:
    """Serves the Flask app on ``ip:port`` until :meth:`stop`."""

    def __init__(
        self, app: Flask, ip: str, port: int, threads: int = 8, streams: Any = None
    ) -> None:
        self._app = app
        self._streams = streams  # StreamGate: open streams end before the workers are joined
        self.ip = ip
        self.port = port
        self._threads = max(2, threads)
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (failing at once if the port is taken) and serve in a thread."""
        if self._server is not None:
            return
        if self._streams is not None:
            self._streams.start()
        server = wsgi.Server((self.ip, self.port), self._app, numthreads=self._threads)
        server.shutdown_timeout = 2
        try:
            server.prepare()
        except OSError as exc:
            raise ConfigError(f"REST API cannot listen on {self.ip}:{self.port}: {exc}") from exc
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="motey-rest", daemon=True)
        self._thread.start()
        log.info("REST API listening on http://{}:{}/v1", self.ip, self.port)

    def stop(self) -> None:
        """Stop accepting, finish running requests, join the thread; idempotent."""
        if self._server is None:
            return
        if self._streams is not None:
            self._streams.close()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        log.info("REST API stopped")
