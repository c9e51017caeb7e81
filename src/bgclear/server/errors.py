"""Every refusal as ``{"error": {"code": ..., "message": ...}}`` with a fitting status.

Engine refusals (:class:`~bgclear.errors.InputError`) keep their code and the
status from :data:`~bgclear.errors.INPUT_ERROR_CODES`; the server adds its own
codes for what only a server can refuse (busy, loading, a malformed request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import INPUT_ERROR_CODES, InputError, ModelError

log = logging.getLogger("bgclear.server")

#: Codes only the server uses -> HTTP status.
SERVER_ERROR_CODES: dict[str, int] = {
    "missing_file": 400,
    "bad_request": 400,
    "not_found": 404,
    "edit_expired": 404,  # an edit handle this server does not hold: send the image again
    "method_not_allowed": 405,
    "missing_api_key": 403,
    "invalid_api_key": 403,
    "upload_timeout": 408,
    "rate_limited": 429,
    "busy": 503,
    "loading": 503,
    "model_unavailable": 503,
    "internal": 500,
}


class APIError(Exception):
    """A refusal the server decides; rendered by :func:`install_error_handlers`."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = SERVER_ERROR_CODES.get(code) or INPUT_ERROR_CODES[code]
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


#: Renders one refusal (status, code, message, headers, title or None) for endpoints that
#: answer in another API's error shape; see ``shapes`` in :func:`install_error_handlers`.
ErrorRenderer = Callable[[int, str, str, "dict[str, str] | None", "str | None"], Response]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid value')}" if where else err.get("msg", "invalid value"))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI, shapes: dict[str, ErrorRenderer] | None = None) -> None:
    """Register the handlers that turn exceptions into the JSON error body.

    ``shapes`` maps a path prefix to the renderer of the API served there (the
    remove.bg drop-in answers ``{"errors": [...]}``): every refusal below, whatever
    raised it, is rendered by the first renderer whose prefix starts the path.
    """
    shapes = dict(shapes or {})

    def respond(request: Request, status: int, code: str, message: str,
                headers: dict[str, str] | None = None, title: str | None = None) -> Response:
        for prefix, render in shapes.items():
            if request.url.path.startswith(prefix):
                return render(status, code, message, headers, title)
        return error_response(status, code, message, headers)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        log.info("refused: %s (%d)", exc.code, exc.status)
        return respond(request, exc.status, exc.code, exc.message, exc.headers, getattr(exc, "title", None))

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        log.info("refused: %s (%d)", exc.code, INPUT_ERROR_CODES[exc.code])
        return respond(request, INPUT_ERROR_CODES[exc.code], exc.code, exc.message)

    @app.exception_handler(ModelError)
    async def _model_error(request: Request, exc: ModelError) -> Response:
        log.error("model error: %s", exc)
        return respond(request, 503, "model_unavailable", f"the model cannot run: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return respond(request, 422, "invalid_option", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = {404: "no such page or endpoint; the API is POST /v1/remove, its documentation is at /docs",
                   405: "this method is not allowed here; the API is POST /v1/remove"}.get(exc.status_code, str(exc.detail))
        return respond(request, exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The traceback names no upload (it has no name here) and holds no pixels.
        log.exception("unexpected error: %s", exc.__class__.__name__)
        return respond(request, 500, "internal", "the server failed on this image; please report it with the steps to repeat it")
