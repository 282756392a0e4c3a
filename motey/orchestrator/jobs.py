"""The orchestrator's workers: one queue of service jobs, one pool for a job's images.

A service job (deploy, terminate) runs in the job pool under the service's lock; the
images of one service are then started or stopped side by side in the image pool, so a
service of two images whose processes ignore SIGTERM stops in one stop timeout, not two.
Two pools, because a job that waits for its images in the pool it runs in could wait
for itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import logbook

log = logbook.Logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class JobRunner:
    """Runs service jobs and fans a job out over its images, both bounded by ``workers``."""

    def __init__(self, workers: int = 4) -> None:
        self._workers = max(1, workers)
        self._jobs: ThreadPoolExecutor | None = None
        self._images: ThreadPoolExecutor | None = None
        self._running: set[Future[None]] = set()
        self._guard = threading.Lock()
        self._pending: dict[str, int] = {}
        #: Set while the orchestrator stops: jobs pause where they are (they resume after
        #: a restart) instead of failing.
        self.stopping = threading.Event()
        #: Services whose termination was asked for; a deployment of them gives up.
        self.cancelled: set[str] = set()

    @property
    def running(self) -> bool:
        return self._jobs is not None and not self.stopping.is_set()

    def start(self) -> None:
        if self._jobs is not None:
            return
        self.stopping.clear()
        self._jobs = ThreadPoolExecutor(self._workers, thread_name_prefix="motey-orch")
        self._images = ThreadPoolExecutor(self._workers, thread_name_prefix="motey-image")

    def stop(self, timeout: float) -> bool:
        """Drop queued jobs and wait at most ``timeout`` s for running ones; idempotent.

        Returns whether every running job ended in time. A job still inside an engine call
        after the budget is left to finish on its own (it pauses at its next step).
        """
        self.stopping.set()
        jobs, images = self._jobs, self._images
        self._jobs = self._images = None
        if jobs is None or images is None:
            return True
        jobs.shutdown(wait=False, cancel_futures=True)
        images.shutdown(wait=False, cancel_futures=True)
        with self._guard:
            running = set(self._running)
        _done, late = wait(running, timeout=max(0.0, timeout))
        if late:
            log.warning(
                "{} orchestrator job(s) still running after {:g} s; not waiting for them",
                len(late),
                timeout,
            )
        return not late

    # -- service jobs --------------------------------------------------------------
    def schedule(self, service_id: str, job: Callable[[str], None]) -> Future[None] | None:
        """Queue ``job(service_id)``; ``None`` when the orchestrator does not run."""
        pool = self._jobs
        if pool is None or self.stopping.is_set():
            log.warning("orchestrator is not running; job for service {} deferred", service_id)
            return None
        self.mark_pending(service_id, +1)

        def run() -> None:
            try:
                job(service_id)
            except Exception as exc:  # a job failure must never kill a worker silently
                log.exception("job for service {} failed: {}", service_id, exc)
            finally:
                self.mark_pending(service_id, -1)

        try:
            future = pool.submit(run)
        except RuntimeError:  # pool shut down between the check and the submit
            self.mark_pending(service_id, -1)
            return None
        with self._guard:
            self._running.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[None]) -> None:
        with self._guard:
            self._running.discard(future)

    def mark_pending(self, service_id: str, delta: int) -> None:
        """Count queued jobs per service; the watcher leaves services with jobs alone."""
        with self._guard:
            count = self._pending.get(service_id, 0) + delta
            if count > 0:
                self._pending[service_id] = count
            else:
                self._pending.pop(service_id, None)

    def is_pending(self, service_id: str) -> bool:
        with self._guard:
            return service_id in self._pending

    # -- images of one job ---------------------------------------------------------
    def each(self, func: Callable[[T], R], items: Iterable[T]) -> list[R | BaseException]:
        """``func`` over ``items`` side by side; each result, or the exception it raised."""
        todo = list(items)
        pool = self._images
        if len(todo) <= 1 or pool is None:
            return [self._call(func, item) for item in todo]
        try:
            futures = [pool.submit(self._call, func, item) for item in todo]
        except RuntimeError:  # stopping: finish in this thread
            return [self._call(func, item) for item in todo]
        return [self._result(f) for f in futures]

    @staticmethod
    def _result(future: Future[R | BaseException]) -> R | BaseException:
        try:
            return future.result()
        except CancelledError as exc:  # dropped by a stop: the caller pauses
            return exc

    @staticmethod
    def _call(func: Callable[[T], R], item: T) -> R | BaseException:
        try:
            return func(item)
        except Exception as exc:
            return exc
