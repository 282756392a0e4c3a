"""The REST server: cheroot (a production WSGI server) in a thread that can be stopped."""

from __future__ import annotations

import threading

import logbook
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from motey.errors import ConfigError

log = logbook.Logger(__name__)


class APIServer:
    """Serves the Flask app on ``ip:port`` until :meth:`stop`."""

    def __init__(
        self,
        app: Flask,
        ip: str,
        port: int,
        threads: int = 8,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """``tls`` = (certificate, key) files: serve HTTPS only (secure mode)."""
        self._app = app
        self._tls = tls
        self.ip = ip
        self.port = port
        self._threads = max(2, threads)
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (failing at once if the port is taken) and serve in a thread."""
        if self._server is not None:
            return
        server = wsgi.Server((self.ip, self.port), self._app, numthreads=self._threads)
        server.shutdown_timeout = 2
        if self._tls is not None:
            # cheroot's own TLS adapter (Python's ssl); a plain HTTP request on this port
            # gets a 400 that says the port speaks HTTPS only.
            server.ssl_adapter = BuiltinSSLAdapter(*self._tls)
        try:
            server.prepare()
        except OSError as exc:
            raise ConfigError(f"REST API cannot listen on {self.ip}:{self.port}: {exc}") from exc
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="motey-rest", daemon=True)
        self._thread.start()
        scheme = "https" if self._tls is not None else "http"
        log.info("REST API listening on {}://{}:{}/v1", scheme, self.ip, self.port)

    def stop(self) -> None:
        """Stop accepting, finish running requests, join the thread; idempotent."""
        if self._server is None:
            return
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        log.info("REST API stopped")
