"""The process's ZeroMQ context as a dependency-injector resource."""

from __future__ import annotations

from collections.abc import Iterator

import zmq


def zeromq_context() -> Iterator[zmq.Context]:
    """Yield one context for every socket of the node; destroy it on shutdown.

    ``destroy(linger=0)`` closes any socket a component failed to close, so shutdown
    can never hang on a message queued for a peer that is gone. A context whose
    container was never shut down is left alone when the garbage collector finds it:
    destroying it then would block whichever thread the collector happens to run in
    (and hang it for good if another thread still uses one of its sockets).
    """
    context = zmq.Context()
    try:
        yield context
    except GeneratorExit:  # collected, not shut down
        raise
    except BaseException:
        context.destroy(linger=0)
        raise
    context.destroy(linger=0)
