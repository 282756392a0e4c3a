"""Waking a ZeroMQ loop from another thread, so that stopping it costs no poll interval.

A loop that polls its socket with a timeout only to look at a stop flag delays every
shutdown by up to that timeout (the repliers polled every 250 ms: most of a 566 ms
shutdown). A :class:`Waker` is an inproc ``PAIR`` pair: the loop polls its ``receiver``
next to its own sockets with no timeout, and :meth:`Waker.wake` (from any thread) makes
the receiver readable. ZeroMQ sockets are not thread-safe: the loop owns ``receiver``
while it runs, the sender is used only under the waker's lock, and :meth:`close` is
called after the loop's thread has ended. See docs/scale.md.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import zmq


class Waker:
    """An inproc PAIR whose receiving end becomes readable on :meth:`wake`."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        endpoint = f"inproc://motey-wake-{uuid.uuid4().hex}"
        self.receiver: zmq.Socket[Any] = context.socket(zmq.PAIR)
        self.receiver.setsockopt(zmq.LINGER, 0)
        self.receiver.bind(endpoint)
        self._sender: zmq.Socket[Any] = context.socket(zmq.PAIR)
        self._sender.setsockopt(zmq.LINGER, 0)
        self._sender.connect(endpoint)
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        """Make :attr:`receiver` readable (idempotent; a full queue already wakes)."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(zmq.Again, zmq.ZMQError):
                self._sender.send(b"", zmq.NOBLOCK)

    def drain(self) -> None:
        """Empty the receiver (the loop's thread only), e.g. after a wake that was not a stop."""
        with contextlib.suppress(zmq.Again, zmq.ZMQError):
            while True:
                self.receiver.recv(zmq.NOBLOCK)

    def close(self) -> None:
        """Close both ends; call once the loop's thread has ended."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._sender.close(linger=0)
            self.receiver.close(linger=0)
