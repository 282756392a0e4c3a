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
    """CPU, memory and disk of this node, sampled when asked, at most every ``interval``.

    ``psutil.cpu_percent`` compares two readings; the first is taken at start, each
    later one when ``GET /v1/nodestatus`` asks and the last sample is older than
    ``interval`` (the CPU figure is then the average since the previous sample). A
    sampler thread woke every 2 s on every idle node for figures nobody asked for
    (docs/scale.md, "Threads wake on stop instead of polling").
    """

    #: Seconds :meth:`stop` may take (nothing runs in the background); see motey/lifecycle.py.
    STOP_WAIT = 0.1

    def __init__(self, disk_path: str, interval: float = 2.0) -> None:
        self._disk_path = disk_path
        self._interval = interval
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}
        self._sampled = 0.0  # monotonic time of the last sample

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # prime the counter
        self._sample()

    def stop(self) -> None:
        """Nothing to stop: sampling happens on request."""

    def snapshot(self) -> dict[str, Any]:
        """The latest sample, taken now if it is older than ``interval``."""
        with self._lock:
            if self._snapshot and time.monotonic() - self._sampled < self._interval:
                return dict(self._snapshot)
        try:
            self._sample()
        except Exception as exc:  # a failed read is not fatal: the last sample stands
            log.warning("node status sampling failed: {}", exc)
        with self._lock:
            return dict(self._snapshot)

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
            self._sampled = time.monotonic()
