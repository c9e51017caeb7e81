"""Edit handles: images held in memory between the clicks of a touch-up.

``POST /v1/remove?edit=true`` keeps the request's :class:`~bgclear.pipeline.Prepared`
image (decoded pixels and automatic segmentation; the session's own cache holds
the promptable model's embedding) under a random handle, so that each further
click sends only its points. The store is bounded three ways: a time to live
since the last use, a number of entries and a number of bytes (least recently
used first out). Nothing is ever written to disk. A handle is only a speed-up:
another replica, a restart or an expiry loses it, and the client then sends the
image again (the API answers 404 ``edit_expired``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..pipeline import Prepared

log = logging.getLogger("bgclear.server")

DEFAULT_EDIT_TTL = 600.0
DEFAULT_EDIT_BYTES = 256 * 2**20
DEFAULT_EDIT_ENTRIES = 32


def prepared_nbytes(prepared: Prepared) -> int:
    """Bytes of the arrays a prepared image holds (pixels, own alpha, segmentation)."""
    decoded = prepared.decoded
    alpha = decoded.source_alpha.nbytes if decoded.source_alpha is not None else 0
    return decoded.rgb.nbytes + alpha + prepared.probability.nbytes


@dataclass
class _Entry:
    prepared: Prepared
    nbytes: int
    used: float


class EditStore:
    """Thread-safe ``handle -> Prepared`` with a time to live (seconds since the last use),
    at most ``max_entries`` entries and ``max_bytes`` bytes; ``max_entries=0`` turns it off.

    Expired entries are dropped when the store is touched and by :meth:`start`'s sweeper,
    so an idle server holds no image past its time to live (plus one sweep interval).
    """

    def __init__(self, ttl: float = DEFAULT_EDIT_TTL, max_bytes: int = DEFAULT_EDIT_BYTES,
                 max_entries: int = DEFAULT_EDIT_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl)
        self.max_bytes = max(0, int(max_bytes))
        self.max_entries = max(0, int(max_entries))
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0 and self.ttl > 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, prepared: Prepared) -> str | None:
        """Hold ``prepared``; its new handle, or None when it alone is over the byte bound (or the store is off)."""
        size = prepared_nbytes(prepared)
        if not self.enabled or size > self.max_bytes:
            return None
        handle = secrets.token_urlsafe(18)
        with self._lock:
            self._expire()
            self._entries[handle] = _Entry(prepared, size, self._clock())
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                self._pop(next(iter(self._entries)))
        return handle

    def get(self, handle: str) -> Prepared | None:
        """The prepared image under ``handle`` (its time to live starts again), or None when unknown or expired."""
        with self._lock:
            self._expire()
            entry = self._entries.get(handle)
            if entry is None:
                return None
            entry.used = self._clock()
            self._entries.move_to_end(handle)
            return entry.prepared

    def drop(self, handle: str) -> bool:
        """Forget ``handle`` now; whether it was held."""
        with self._lock:
            return self._pop(handle)

    def sweep(self) -> int:
        """Drop every expired entry; how many were dropped."""
        with self._lock:
            return self._expire()

    def _pop(self, handle: str) -> bool:
        entry = self._entries.pop(handle, None)
        if entry is None:
            return False
        self._bytes -= entry.nbytes
        return True

    def _expire(self) -> int:
        deadline = self._clock() - self.ttl
        dropped = 0
        # Entries are in order of last use: the expired ones are at the front.
        while self._entries:
            handle, entry = next(iter(self._entries.items()))
            if entry.used > deadline:
                break
            self._pop(handle)
            dropped += 1
        return dropped

    def start(self) -> None:
        """Sweep expired entries on a daemon thread, every quarter of the time to live (30 s at most)."""
        if self._sweeper is not None or not self.enabled:
            return
        interval = min(30.0, max(0.05, self.ttl / 4))

        def run() -> None:
            while not self._stop.wait(interval):
                if self.sweep():
                    log.debug("edit handles expired; %d held (%d bytes)", len(self), self.nbytes)

        self._sweeper = threading.Thread(target=run, name="bgclear-edit-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the sweeper and forget every entry."""
        self._stop.set()
        with self._lock:
            self._entries.clear()
            self._bytes = 0
