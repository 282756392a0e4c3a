"""The process's ZeroMQ context as a dependency-injector resource."""

from __future__ import annotations

from collections.abc import Iterator

import zmq


def zeromq_context() -> Iterator[zmq.Context]:
    """Yield one context for every socket of the node; destroy it on shutdown.

    ``destroy(linger=0)`` closes any socket a component failed to close, so shutdown
    can never hang on a message queued for a peer that is gone.
    """
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)
