"""Small bounded memos for the node-to-node hot path (docs/scale.md, "Node-to-node requests").

A peer asks the same few requests again and again (the same capability request, the
status of the same images) and gets the same few replies, so decoding and validating
what was already decoded and validated once is work to skip. Only what is pure is
memoised: a function of the bytes alone whose result is immutable (or copied by the
caller). Failures are never memoised, so a malformed message is refused with its
detailed error every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Keys (messages) longer than this are not kept: deploy requests and big replies are
#: rare, and a memo of them would hold megabytes.
MAX_KEY_BYTES = 1024


class Memo(Generic[K, V]):
    """``compute(key)`` remembered for up to ``size`` keys, the oldest dropped first.

    Lookups take no lock (a dictionary read is atomic under the GIL); a miss computes
    outside any lock and inserts under one, so concurrent callers never block each
    other on the hot path.
    """

    def __init__(self, compute: Callable[[K], V], size: int = 256) -> None:
        self._compute = compute
        self._size = size
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> V:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._compute(key)  # raises for invalid input: nothing is kept
        if isinstance(key, bytes | str) and len(key) > MAX_KEY_BYTES:
            return value
        with self._lock:
            if len(self._values) >= self._size:
                self._values.pop(next(iter(self._values)))
            self._values[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
