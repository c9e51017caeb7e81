"""The state shared by all requests, and the FastAPI dependencies that hand it out."""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from .. import Session
from .config import ServerSettings
from .edits import EditStore
from .errors import APIError
from .limiter import Limiter
from .ratelimit import RateLimiter

log = logging.getLogger("bgclear.server")


#: How long the work of a touch-up (the automatic segmentation and the prompt embedding of a
#: photo) may stay in memory unused: a user between two clicks, not an image store.
TOUCH_UP_SECONDS = 600.0


class AppState:
    """Settings, the model session (loaded once, in the background), the limiter and the images
    held for touch-up (:class:`~.edits.EditStore`)."""

    def __init__(self, settings: ServerSettings, session: Session | None = None) -> None:
        self.settings = settings
        self.session = session
        self.load_error: str | None = None
        self.limiter = Limiter(settings.max_concurrency, settings.queue_size)
        self.rate_limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.edits = EditStore(settings.edit_ttl, settings.edit_max_bytes, settings.edit_max_entries)
        self.started = time.time()
        self._loader: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.session is not None

    def start_loading(self) -> None:
        """Load the models on a thread, so /healthz can answer 'loading' meanwhile."""
        if self.session is not None or self._loader is not None:
            return
        self._loader = threading.Thread(target=self._load, name="bgclear-model-load", daemon=True)
        self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        if self._loader is not None:
            self._loader.join(timeout)
        return self.ready

    def _load(self) -> None:
        s = self.settings
        try:
            self.session = Session(segmenter=s.segmenter, refiner=s.refiner, engine=s.engine, precision=s.precision,
                                   threads=s.threads, cache_seconds=TOUCH_UP_SECONDS)
            log.info("ready: segmenter=%s refiner=%s (%s, %d threads) loaded in %.2fs", s.segmenter, s.refiner,
                     self.session.describe(), s.threads, self.session.load_seconds)
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and every request
            self.load_error = f"{exc.__class__.__name__}: {exc}"
            log.error("the model failed to load: %s", self.load_error)


def get_state(request: Request) -> AppState:
    """The application's :class:`AppState`."""
    return request.app.state.bgclear


StateDep = Annotated[AppState, Depends(get_state)]


def loaded_session(state: StateDep) -> Session:
    """The loaded session, or 503 while it loads (or if loading failed)."""
    if state.session is not None:
        return state.session
    if state.load_error is not None:
        raise APIError("model_unavailable", f"the model failed to load ({state.load_error}); see the server log")
    raise APIError("loading", "the model is still loading; try again in a few seconds", headers={"Retry-After": "2"})


SessionDep = Annotated[Session, Depends(loaded_session)]
