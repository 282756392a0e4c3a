"""The instance state cache: image status answered from memory, kept current by the
engine's event stream (docs/scale.md, "Node-to-node requests").

Asking Docker for one container costs about a millisecond (a list by label plus an
inspect), and the owner of every image asks its node for the image's status over and
over. So the answer is kept, and dropped the moment the engine reports any change to
that image's container (start, die, kill, destroy, ...): the next question asks the
engine again and keeps the fresh answer. A container killed behind Motey's back thus
shows in the next status answer after its ``die`` event, which Docker sends at once.

What is kept is only ever what the engine itself answered; the event stream only
forgets. An answer is kept only when nothing could have made it stale while it was
being fetched: the stream was connected before the question was asked and stayed
connected, and no event named the image since (sequence numbers, see
:class:`_EngineStates`). While the stream is down (dockerd restarting) nothing is kept
and every question goes to the engine; the watcher reconnects on its own, with a
backoff, and starts from an empty cache.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import logbook

from motey.models.image import Image
from motey.val.manager import VALManager
from motey.val.plugin import InstanceEvents, InstanceStatus, VALPlugin

log = logbook.Logger(__name__)

#: A container id (or prefix), which an original Motey sends in place of an image id.
#: Events name images by their label, never so: such answers are not kept.
_CONTAINER_ID = re.compile(r"^[0-9a-f]{10,64}$")

#: Seconds between reconnection attempts, doubling from the first to the last.
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: A stream that ends sooner than this after it opened counts as a failure (backoff), so
#: an engine that closes every stream at once is not asked again in a busy loop.
SHORT_STREAM = 1.0


class _EngineStates:
    """The answers kept for one engine, and what decides whether an answer may be kept.

    ``seq`` counts every event and every (dis)connection. A question notes ``seq``
    before it asks the engine (``asked``); its answer is kept only when the stream has
    been live since before then (``live_since <= asked``) and no event named the image
    after then (``touched[image] <= asked``). ``touched`` is bounded; ``forgotten`` is
    the newest sequence number dropped from it, and answers asked before that are not
    kept either.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.seq = 0
        self.live_since: int | None = None
        self.entries: dict[str, InstanceStatus] = {}
        self.touched: dict[str, int] = {}
        self.forgotten = 0
        self.stream: InstanceEvents | None = None

    def connected(self) -> None:
        with self.lock:
            self.seq += 1
            self.entries.clear()
            self.live_since = self.seq

    def disconnected(self) -> None:
        with self.lock:
            self.seq += 1
            self.entries.clear()
            self.live_since = None

    def changed(self, image_id: str) -> None:
        with self.lock:
            self.seq += 1
            self.entries.pop(image_id, None)
            self.touched.pop(image_id, None)  # re-insert: the dict stays in event order
            self.touched[image_id] = self.seq
            if len(self.touched) > self.size:
                oldest = next(iter(self.touched))
                self.forgotten = max(self.forgotten, self.touched.pop(oldest))

    def keep(self, image_id: str, status: InstanceStatus, asked: int) -> None:
        if _CONTAINER_ID.match(image_id):
            return
        with self.lock:
            if self.live_since is None or self.live_since > asked or self.forgotten > asked:
                return
            if self.touched.get(image_id, 0) > asked:
                return
            if image_id not in self.entries and len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            self.entries[image_id] = status


class InstanceStates:
    """Status of this node's instances from memory, for the engines that have events.

    A component (``start``/``stop``): one watcher thread per engine whose plugin offers
    :meth:`~motey.val.plugin.VALPlugin.events`. Engines without events are asked on
    every call, as before.
    """

    #: Seconds :meth:`stop` may take: closing a stream wakes its watcher at once.
    STOP_WAIT = 1.0

    def __init__(self, val_manager: VALManager, size: int = 4096) -> None:
        self._val = val_manager
        self._size = size
        self._engines: dict[str, _EngineStates] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Watch every engine that has an event stream (the VAL manager started first)."""
        if self._threads:
            return
        self._stop.clear()
        for engine in self._val.engines:
            plugin = self._val.plugin(engine)
            if type(plugin).events is VALPlugin.events:
                continue
            states = _EngineStates(self._size)
            self._engines[engine] = states
            thread = threading.Thread(
                target=self._watch,
                args=(engine, plugin, states),
                name=f"motey-states-{engine}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Close every stream (which wakes its watcher) and wait for the watchers."""
        self._stop.set()
        for states in self._engines.values():
            with states.lock:
                stream = states.stream
            if stream is not None:
                stream.close()
        for thread in self._threads:
            thread.join(timeout=self.STOP_WAIT - 0.2)
            if thread.is_alive():
                log.warning("{} did not stop in time", thread.name)
        self._threads = []
        self._engines = {}

    # -- queries ---------------------------------------------------------------------
    def status(self, image_id: str, engine: str) -> InstanceStatus:
        """The state of ``image_id``'s instance, as the engine last answered it."""
        states = self._engines.get(engine)
        if states is None:
            return self._val.status(Image(id=image_id, name="", engine=engine))
        kept = states.entries.get(image_id)
        if kept is not None:
            return kept
        asked = states.seq
        status = self._val.status(Image(id=image_id, name="", engine=engine))
        states.keep(image_id, status, asked)
        return status

    def forget(self, image_id: str, engine: str) -> None:
        """Drop what is kept of ``image_id`` as an event would (this node just started or
        removed its instance), so no answer from before the change is given after it."""
        states = self._engines.get(engine)
        if states is not None:
            states.changed(image_id)

    def live(self, engine: str) -> bool:
        """Whether ``engine``'s event stream is connected (answers may be kept)."""
        states = self._engines.get(engine)
        return states is not None and states.live_since is not None

    def reconnect(self, engine: str) -> None:
        """End ``engine``'s current stream as the engine would (dockerd restarting):
        everything kept is dropped and the watcher opens a new stream."""
        states = self._engines.get(engine)
        stream = states.stream if states is not None else None
        if stream is not None:
            stream.close()

    # -- the watcher -----------------------------------------------------------------
    def _watch(self, engine: str, plugin: VALPlugin, states: _EngineStates) -> None:
        delay = RETRY_FIRST
        failures = 0
        while not self._stop.is_set():
            try:
                stream = plugin.events()
            except Exception as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "{} events unavailable ({}); status asks the engine until they are back",
                    engine,
                    exc,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            assert stream is not None
            with states.lock:
                if self._stop.is_set():
                    stream.close()
                    return
                states.stream = stream
            states.connected()
            if failures:
                log.info("{} events back after {} failed attempt(s)", engine, failures)
            failures = 0
            opened = time.monotonic()
            self._follow(engine, stream, states)
            if self._stop.is_set():
                return
            log.info("{} event stream ended; reconnecting", engine)
            if time.monotonic() - opened >= SHORT_STREAM:
                delay = RETRY_FIRST
            else:  # ended at once: back off as after a failed attempt
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _follow(self, engine: str, stream: InstanceEvents, states: _EngineStates) -> None:
        try:
            for image_id in stream:
                states.changed(image_id)
        except Exception as exc:  # a broken connection ends the stream like an EOF
            if not self._stop.is_set():
                log.warning("{} event stream broke: {}", engine, exc)
        finally:
            states.disconnected()
            with states.lock:
                states.stream = None
            stream.close()

    def __repr__(self) -> str:
        return f"InstanceStates(engines={sorted(self._engines)})"

    def kept(self, engine: str) -> dict[str, Any]:
        """What is kept for ``engine`` (for tests and debugging)."""
        states = self._engines.get(engine)
        return dict(states.entries) if states is not None else {}
