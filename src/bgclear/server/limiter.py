"""A bounded number of cutouts at once, a bounded queue, and 503 beyond it.

Cutouts are CPU-bound, so they run in a thread pool of ``max_concurrency``
threads, never on the event loop. Requests are admitted while fewer than
``max_concurrency + queue_size`` are in the building (uploading, waiting or
running); the next one is refused at once with ``Retry-After`` rather than
left to time out, so no request is silently dropped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from ..process import release_free_memory
from .errors import APIError

T = TypeVar("T")
#: Assumed seconds per cutout before the first one has been timed.
_FIRST_GUESS_S = 5.0


class ClientGone(Exception):
    """The client disconnected while its request waited for a worker."""


class Limiter:
    """Admission control and the worker pool. Its counters are only touched on the event loop."""

    def __init__(self, max_concurrency: int, queue_size: int) -> None:
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.admitted = 0
        self.running = 0
        self.completed = 0
        self.refused = 0
        self._avg_s: float | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self.executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="bgclear-cutout")

    @property
    def capacity(self) -> int:
        return self.max_concurrency + self.queue_size

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead divided among the workers."""
        per_cutout = self._avg_s if self._avg_s is not None else _FIRST_GUESS_S
        rounds = max(1, self.admitted) / self.max_concurrency
        return max(1, min(120, math.ceil(per_cutout * rounds)))

    @property
    def full(self) -> bool:
        return self.admitted >= self.capacity

    def busy_error(self) -> APIError:
        """The refusal when full: 503 with a Retry-After estimated from recent cutouts."""
        self.refused += 1
        seconds = self.retry_after()
        return APIError(
            "busy",
            f"the server is busy ({self.running} images in progress, {self.waiting} waiting); "
            f"try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Hold a place in the building for the duration of one request, or raise ``busy``."""
        if self.full:
            raise self.busy_error()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, fn: Callable[[], T], client_gone: Callable[[], Awaitable[bool]] | None = None) -> T:
        """Wait for a worker, then run ``fn`` on it; the event loop stays free meanwhile.

        Raises :class:`ClientGone` instead of running when ``client_gone()`` says the
        client left while waiting: its turn goes to the next request.
        """
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        async with self._semaphore:
            if client_gone is not None and await client_gone():
                raise ClientGone
            self.running += 1
            started = time.perf_counter()
            try:
                return await asyncio.get_running_loop().run_in_executor(self.executor, _then_trim, fn)
            finally:
                self.running -= 1
                self.completed += 1
                took = time.perf_counter() - started
                self._avg_s = took if self._avg_s is None else 0.7 * self._avg_s + 0.3 * took

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _then_trim(fn: Callable[[], T]) -> T:
    """``fn()``, then the freed heap goes back to the kernel (see :func:`bgclear.process.release_free_memory`)."""
    try:
        return fn()
    finally:
        release_free_memory()
