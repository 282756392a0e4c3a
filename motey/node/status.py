"""Resource usage of this node, sampled in the background so requests never wait."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import logbook
import psutil

log = logbook.Logger(__name__)


class NodeStatusMonitor:
    """Samples CPU, memory and disk every ``interval`` seconds in its own thread.

    ``psutil.cpu_percent`` needs two readings some time apart; sampling in the
    background lets ``GET /v1/nodestatus`` answer from the last sample at once.
    """

    #: Seconds :meth:`stop` may take (the sampler waits on the stop event); see motey/lifecycle.py.
    STOP_WAIT = 1.0

    def __init__(self, disk_path: str, interval: float = 2.0) -> None:
        self._disk_path = disk_path
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}

    def start(self) -> None:
        if self._thread is not None:
            return
        psutil.cpu_percent(interval=None)  # prime the counter
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="motey-nodestatus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.STOP_WAIT)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        """The latest sample (taken now if the sampler has not run yet)."""
        with self._lock:
            if self._snapshot:
                return dict(self._snapshot)
        self._sample()
        with self._lock:
            return dict(self._snapshot)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sample()
            except Exception as exc:  # keep sampling; a failed read is not fatal
                log.warning("node status sampling failed: {}", exc)

    def _sample(self) -> None:
        memory = psutil.virtual_memory()
        path = self._disk_path if os.path.exists(self._disk_path) else "/"
        disk = psutil.disk_usage(path)
        try:
            load = list(os.getloadavg())
        except OSError:
            load = []
        snapshot = {
            "cpu": {"percent": psutil.cpu_percent(interval=None), "count": psutil.cpu_count()},
            "memory": {
                "percent": memory.percent,
                "total": memory.total,
                "available": memory.available,
                "used": memory.used,
            },
            "disk": {
                "path": path,
                "percent": disk.percent,
                "total": disk.total,
                "used": disk.used,
                "free": disk.free,
            },
            "load_average": load,
            "sampled_at": time.time(),
        }
        with self._lock:
            self._snapshot = snapshot
