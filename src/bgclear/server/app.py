"""The FastAPI application: routers, error handlers, the access log and start-up loading."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import Session, __version__
from .access import api_guard
from .config import ServerSettings
from .errors import install_error_handlers
from .openapi import add_components
from .ratelimit import rate_limit_headers
from .routers import edit, health, page, remove, removebg
from .routers.page import STATIC_DIR
from .state import AppState

log = logging.getLogger("bgclear.server")

DESCRIPTION = """Background removal: an image in, a transparent PNG with a soft alpha matte out, at full resolution.

Uploads are processed in memory and never stored: not on disk, not in logs (which hold sizes and timings only).

    curl -F image_file=@photo.jpg -o cutout.png http://localhost:8000/v1/remove
"""


class AccessLog:
    """One log line per request: method, path (never the query or the body), status, bytes, seconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        result = {"status": 0, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                result["status"] = message["status"]
            elif message["type"] == "http.response.body":
                result["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            log.info("%s %s %d %d bytes %.3fs", scope["method"], scope["path"], result["status"],
                     result["bytes"], time.perf_counter() - started)


def create_app(settings: ServerSettings | None = None, session: Session | None = None) -> FastAPI:
    """Build the app. The models load in the background at start-up unless ``session`` is given."""
    state = AppState(settings or ServerSettings(), session)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        state.edits.start()
        yield
        state.limiter.shutdown()
        state.edits.stop()

    # The guard runs before every route (it lets all but the API paths through), so
    # routers added later are behind the keys and the rate limit without opting in.
    app = FastAPI(title="bgclear", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  dependencies=[Depends(api_guard)])
    app.state.bgclear = state
    install_error_handlers(app, shapes={removebg.PREFIX: removebg.render_error})
    app.include_router(health.router)
    app.include_router(remove.router)
    app.include_router(edit.router)
    app.include_router(removebg.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(rate_limit_headers)
    app.add_middleware(AccessLog)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = add_components(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
