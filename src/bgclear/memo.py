"""A small in-memory cache of per-image work, bounded by bytes; never written to disk.

A :class:`~bgclear.pipeline.Session` keeps what it computed for an image (the
automatic segmentation, the promptable segmenter's embedding) under a digest of
the decoded pixels, so a second call on the same photo with one more click
costs the prompt decoder and the matting, not the encoders again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np


def pixels_key(*arrays: np.ndarray | None) -> str:
    """A digest of arrays' shapes, dtypes and bytes: equal for equal pixels, whatever file they came from."""
    digest = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            digest.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def _nbytes(value: Any) -> int:
    """The arrays a cached value holds: an array, a list of them, or an object's array attributes
    (an embedding's features, a decoder answer's probability and logits)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    fields = getattr(value, "__dict__", None) or {}
    return sum(v.nbytes for v in fields.values() if isinstance(v, np.ndarray))


class ByteBoundedCache:
    """Least-recently-used ``(key, name) -> value`` store holding at most ``max_bytes`` of arrays.

    Thread-safe. Values are numpy arrays, lists of them, or objects holding arrays
    (an embedding, a decoder's answers); the sizes of those arrays are what counts. ``max_bytes=0`` disables it.
    ``max_age``: seconds an entry may go unused before it is dropped (``None``: no limit).
    """

    def __init__(self, max_bytes: int, max_age: float | None = None) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.max_age = max_age
        self._used: dict[tuple[str, str], float] = {}
        self._items: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, name: str) -> Any | None:
        with self._lock:
            self._expire()
            item = self._items.get((key, name))
            if item is None:
                return None
            self._items.move_to_end((key, name))
            self._used[(key, name)] = time.monotonic()
            return item[0]

    def _expire(self) -> None:
        """Drop entries unused for longer than ``max_age`` (oldest first: the order is by last use)."""
        if self.max_age is None:
            return
        limit = time.monotonic() - self.max_age
        while self._items:
            oldest = next(iter(self._items))
            if self._used.get(oldest, 0.0) > limit:
                break
            _, size = self._items.pop(oldest)
            self._used.pop(oldest, None)
            self._bytes -= size

    def put(self, key: str, name: str, value: Any) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            self._expire()
            old = self._items.pop((key, name), None)
            if old is not None:
                self._bytes -= old[1]
            self._items[(key, name)] = (value, size)
            self._used[(key, name)] = time.monotonic()
            self._bytes += size
            while self._bytes > self.max_bytes:
                gone, (_, dropped) = self._items.popitem(last=False)
                self._used.pop(gone, None)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used.clear()
            self._bytes = 0
