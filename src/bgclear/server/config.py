"""Server settings: one frozen object built from the command line, shared by every request."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..backends import DEFAULT_REFINER
from ..io.decode import DEFAULT_MAX_PIXELS, SUPPORTED_FORMATS
from ..models.registry import DEFAULT_SEGMENTER
from .auth import KeyStore
from .edits import DEFAULT_EDIT_BYTES, DEFAULT_EDIT_ENTRIES, DEFAULT_EDIT_TTL
from .ratelimit import RateLimit
from .url_fetch import DEFAULT_TIMEOUT as DEFAULT_URL_FETCH_TIMEOUT
from .url_fetch import AllowList

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: 10 MB per upload, decimal so that the number in the error message is the real limit.
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_QUEUE_SIZE = 8
#: Seconds a client may take to send its whole upload; slower ones would hold a place in the queue.
DEFAULT_UPLOAD_TIMEOUT = 60.0
#: Form fields (options, boundaries, part headers) on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Output formats of the API; ``json`` wraps a PNG (or the asked image format) in base64.
API_FORMATS = ("png", "jpg", "webp", "json")
#: Input container formats the server accepts, detected from the bytes: the decoder's list.
ACCEPTED_INPUT_FORMATS = SUPPORTED_FORMATS


def default_concurrency() -> int:
    """Cutouts at once: one per two cores, because one cutout already uses two threads well
    and a 12 MP cutout needs about 2 GB of memory at its peak."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs to know at start-up."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    segmenter: str = DEFAULT_SEGMENTER
    refiner: str = DEFAULT_REFINER
    max_concurrency: int = 0  # 0: default_concurrency()
    engine: str = "auto"  # inference runtime (bgclear.engines)
    precision: str = "auto"
    threads: int = 0  # per cutout; 0: the cores shared out between concurrent cutouts
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT
    log_level: str = "info"
    api_keys: KeyStore | None = None  # None: the APIs are open (and the server should stay on loopback)
    rate_limit: RateLimit | None = None  # None: no per-client rate limit
    url_fetch: AllowList = AllowList()  # hosts image_url / bg_image_url may name; empty: no fetching
    url_fetch_timeout: float = DEFAULT_URL_FETCH_TIMEOUT
    edit_ttl: float = DEFAULT_EDIT_TTL  # seconds an edit handle lives after its last use; 0: no handles
    edit_max_bytes: int = DEFAULT_EDIT_BYTES  # memory for images held for touch-up
    edit_max_entries: int = DEFAULT_EDIT_ENTRIES

    def __post_init__(self) -> None:
        if self.max_concurrency <= 0:
            object.__setattr__(self, "max_concurrency", default_concurrency())
        if self.threads <= 0:
            # Concurrent cutouts share the cores instead of each spawning a thread per core.
            object.__setattr__(self, "threads", max(1, (os.cpu_count() or 2) // self.max_concurrency))
        if self.queue_size < 0:
            raise ValueError("queue_size must be 0 or more")
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.upload_timeout <= 0:
            raise ValueError("max_bytes, max_pixels and upload_timeout must be positive")
        if self.edit_ttl < 0 or self.edit_max_bytes < 0 or self.edit_max_entries < 0:
            raise ValueError("edit_ttl, edit_max_bytes and edit_max_entries must be 0 or more")

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: the file plus room for the form around it."""
        return self.max_bytes + FORM_OVERHEAD_BYTES
