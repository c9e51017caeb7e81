"""Requests per client over time: a token bucket per API key (or per client address).

Not the same thing as :mod:`.limiter`, which bounds the cutouts *in progress* and
answers 503 when the queue is full: this one bounds how many requests one client
may make per unit of time, whatever the load, and answers 429.

Each client has a bucket of ``burst`` tokens that refills at ``rate`` tokens per
second; a request takes one token or is refused with the time until the next one.
A bucket that has refilled to full is the same as a new one, so it is dropped:
memory follows the clients seen within the last ``burst / rate`` seconds, and a
hard cap (``max_clients``) evicts the least recently seen beyond that.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest number of buckets kept: about 300 bytes each with its key (measured), so 15 MB at the cap.
DEFAULT_MAX_CLIENTS = 50_000
DEFAULT_BURST = 10
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_SPEC = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*([a-z]+?)s?\s*")
#: Where the guard leaves the headers for the response (``request.state``, i.e. ``scope["state"]``).
STATE_KEY = "bgclear_rate_limit_headers"


@dataclass(frozen=True)
class RateLimit:
    """``rate`` tokens per second, buckets of ``burst``; ``text`` as the user wrote it."""

    rate: float
    burst: int
    text: str

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> RateLimit:
        """``'60/min'``, ``'5/s'``, ``'1000/hour'``, ``'10/5min'``; ``burst`` defaults to
        :data:`DEFAULT_BURST` (never more than one unit's worth). Raises ``ValueError``."""
        match = _SPEC.fullmatch(text.lower())
        if match is None or match.group(3) not in _UNITS:
            raise ValueError(f"rate limit {text!r}: write it as N/s, N/min, N/hour or N/day (for example 60/min)")
        count, multiple, unit = float(match.group(1)), int(match.group(2) or 1), match.group(3)
        if count <= 0 or multiple <= 0:
            raise ValueError(f"rate limit {text!r}: the number of requests must be positive")
        if burst is None:
            burst = max(1, min(DEFAULT_BURST, int(count)))
        if burst < 1:
            raise ValueError("the burst must be at least 1")
        return cls(rate=count / (multiple * _UNITS[unit]), burst=burst, text=text.strip())


@dataclass(frozen=True)
class Decision:
    """One request's outcome. Seconds are from the moment of the decision."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # until the next token; 0 when allowed
    reset_after: float  # until the bucket is full again

    def headers(self, wall_now: float | None = None) -> dict[str, str]:
        """``X-RateLimit-Limit`` (the bucket's size), ``-Remaining`` (whole tokens left) and
        ``-Reset`` (Unix time at which the bucket is full again); ``Retry-After`` when refused."""
        now = time.time() if wall_now is None else wall_now
        out = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
               "X-RateLimit-Reset": str(math.ceil(now + self.reset_after))}
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class RateLimiter:
    """Token buckets keyed by client; :meth:`take` is safe to call from any thread."""

    def __init__(self, limit: RateLimit, max_clients: int = DEFAULT_MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        # client -> [tokens, last update]; least recently used first.
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, bucket: list[float], now: float) -> float:
        return min(float(self.limit.burst), bucket[0] + (now - bucket[1]) * self.limit.rate)

    def _evict(self, now: float) -> None:
        # Least recently used first: once the front bucket is not yet full again, its
        # client was seen within burst / rate seconds, and every other one more recently.
        while self._buckets:
            bucket = next(iter(self._buckets.values()))
            if self._refilled(bucket, now) < self.limit.burst:
                break
            self._buckets.popitem(last=False)

    def take(self, client: Hashable) -> Decision:
        """Take a token for ``client`` if there is one."""
        rate, burst = self.limit.rate, self.limit.burst
        with self._lock:
            now = self._clock()
            self._evict(now)
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = [float(burst), now]
                if len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(client)
            tokens = self._refilled(bucket, now)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            bucket[0], bucket[1] = tokens, now
        return Decision(allowed=allowed, limit=burst, remaining=int(tokens),
                        retry_after=0.0 if allowed else (1.0 - tokens) / rate,
                        reset_after=(burst - tokens) / rate)


def rate_limit_headers(app: ASGIApp) -> ASGIApp:
    """Middleware: the ``X-RateLimit-*`` headers a request's guard left in its state go on
    whatever response it gets (the cutout, or an error raised after the guard)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            extra = scope.get("state", {}).get(STATE_KEY) if message["type"] == "http.response.start" else None
            if extra:
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await app(scope, receive, with_headers if scope["type"] == "http" else send)

    return middleware
