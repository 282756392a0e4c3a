"""The REST server: cheroot (a production WSGI server) in a thread that can be stopped."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from typing import Any

import logbook
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from motey.errors import ConfigError

log = logbook.Logger(__name__)


class APIServer:
    """Serves the Flask app on ``ip:port`` until :meth:`stop`."""

    #: Seconds :meth:`stop` may take (cheroot's 2 s for its workers, then waiting for
    #: requests still inside a handler); see motey/lifecycle.py.
    STOP_WAIT = 3.0
    _WORKER_SHUTDOWN = 2.0

    def __init__(
        self,
        app: Flask,
        ip: str,
        port: int,
        threads: int = 8,
        tls: tuple[str, str] | None = None,
        streams: Any = None,
    ) -> None:
        """``tls`` = (certificate, key) files: serve HTTPS only (secure mode)."""
        self._app = app
        self._tls = tls
        self._streams = streams  # StreamGate: open streams end before the workers are joined
        self.ip = ip
        self.port = port
        self._threads = max(2, threads)
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        #: False when a request was still inside a handler when :meth:`stop` gave up.
        self.drained = True

    def _counted(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI app, counting requests inside a handler so a stop can wait for them."""
        with self._idle:
            self._inflight += 1
        try:
            return self._app(environ, start_response)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def start(self) -> None:
        """Bind (failing at once if the port is taken) and serve in a thread."""
        if self._server is not None:
            return
        if self._streams is not None:
            self._streams.start()
        server = wsgi.Server((self.ip, self.port), self._counted, numthreads=self._threads)
        server.shutdown_timeout = self._WORKER_SHUTDOWN
        # cheroot's select() times out every expiration_interval (0.5 s) only to expire
        # idle keep-alive connections; stop() wakes it itself (_touch). docs/scale.md
        server.expiration_interval = 5.0
        server.error_log = _error_log  # type: ignore[method-assign]
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

    def _touch(self) -> None:
        """Open and close one connection to the listening socket (wakes cheroot's select)."""
        try:
            with socket.create_connection((self.ip, self.port), timeout=0.2):
                pass
        except OSError:
            pass  # already closed: the loop has ended or is about to

    def stop(self) -> None:
        """Stop accepting, finish running requests, join the thread; idempotent."""
        if self._server is None:
            return
        if self._streams is not None:
            self._streams.close()
        deadline = time.monotonic() + self.STOP_WAIT - 0.2
        # cheroot's stop joins a worker still inside a handler without a limit after its
        # shutdown timeout; run it aside so this stop keeps its wait.
        stopper = threading.Thread(target=self._server.stop, name="motey-rest-stop", daemon=True)
        stopper.start()
        # cheroot's stop waits for its selector loop, which only looks at the stop flag
        # when its select() times out (every expiration_interval): a shutdown would wait. A
        # connection to the listening socket makes select() return at once.
        while stopper.is_alive() and time.monotonic() < deadline:
            stopper.join(timeout=0.02)
            if stopper.is_alive():
                self._touch()
        stopper.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._idle:
            self._idle.wait_for(
                lambda: self._inflight == 0, timeout=max(0.0, deadline - time.monotonic())
            )
            self.drained = self._inflight == 0
        if not self.drained:
            log.warning("REST API stopped with {} request(s) still in a handler", self._inflight)
        self._server = None
        self._thread = None
        log.info("REST API stopped")


#: A client that went away mid-answer (a closed event stream, a browser tab, a probe):
#: part of a server's life, not an error worth a traceback.
_GONE = (ssl.SSLError, ConnectionError, TimeoutError)


def _error_log(msg: str = "", level: int = 20, traceback: bool = False) -> None:
    """cheroot's error log into logbook: one line, a traceback only for real faults.

    cheroot writes straight to stderr, with a traceback for every write to a connection
    the client closed; a log that fills with those hides the ones that matter.
    """
    error = sys.exc_info()[1]
    if isinstance(error, _GONE) or msg.startswith("socket.error"):
        log.debug("REST client connection ended: {}", msg or error)
    elif traceback and error is not None:
        log.error("REST server: {}", msg or error, exc_info=True)
    elif level >= 40:
        log.error("REST server: {}", msg)
    else:
        log.info("REST server: {}", msg)
