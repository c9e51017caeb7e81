"""remove.bg's API, answered here: ``POST /v1.0/removebg`` and ``GET /v1.0/account``.

Code written against remove.bg switches by changing the base URL. Requests,
responses, headers and errors follow remove.bg's public API reference; what
differs is said in the README ("Switching from remove.bg"). Every refusal under
``/v1.0/``, whoever raises it (this router, the upload reader, the key check, the
rate limit), is drawn by :func:`render_error` in remove.bg's error shape.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..limiter import ClientGone
from ..removebg_openapi import ACCOUNT_RESPONSES, REMOVEBG_OPENAPI, REMOVEBG_RESPONSES, Account, RemoveBgJsonResponse
from ..removebg_params import RemoveBgError, RemoveBgParams, parse_params
from ..removebg_render import RemoveBgResult, render
from ..removebg_request import B64_FIELD, RemoveBgBody, decode_b64_image, read_removebg_body
from ..state import AppState, StateDep, loaded_session
from ..url_fetch import FetchFailed, FetchRefused, fetch
from .remove import _check_input, refuse_when_full, within_upload_timeout

log = logging.getLogger("bgclear.server")
router = APIRouter(tags=["remove.bg drop-in"])
PREFIX = "/v1.0/"

#: bgclear's own codes -> remove.bg's code and title, for refusals raised outside this router.
_REMOVEBG_CODES = {
    "too_large": ("file_too_large", "File too large"),
    "too_many_pixels": ("resolution_too_high", "Image resolution too high"),
    "unsupported_format": ("invalid_file_type", "Invalid file type"),
    "unreadable": ("failed_to_read_image", "There was an error reading the image."),
    "empty": ("failed_to_read_image", "There was an error reading the image."),
    "missing_file": ("missing_source", "No image given"),
}
_TITLES = {400: "Invalid request", 403: "Authentication failed", 404: "Not found", 405: "Method not allowed",
           408: "Upload timed out", 429: "Rate limit exceeded", 500: "Internal server error", 503: "Service unavailable"}


def render_error(status: int, code: str, message: str, headers: dict[str, str] | None, title: str | None) -> Response:
    """``{"errors": [{"title", "code", "detail"}]}``; the status and headers are kept, except that
    bad input (413, 415, 422) is 400 as remove.bg answers it."""
    if code in ("not_found", "method_not_allowed"):
        message = "remove.bg's API here is POST /v1.0/removebg and GET /v1.0/account; the schema is at /openapi.json"
    if title is None:
        code, title = _REMOVEBG_CODES.get(code, (code, _TITLES.get(status, message)))
    if status in (413, 415, 422):
        status = 400
    return JSONResponse({"errors": [{"title": title, "code": code, "detail": message}]}, status_code=status, headers=headers)


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "image/" not in accept


#: which URL -> (parameter, code when refused, code and title when the download fails)
_URLS = {
    "image": ("image_url", "invalid_image_url", "failed_image_download", "Failed to download image from given image_url"),
    "bg": ("bg_image_url", "invalid_bg_image_url", "failed_bg_download", "Failed to download background image from given bg_image_url"),
}


async def _fetch(url: str, state: AppState, which: str) -> bytes:
    """``image_url`` / ``bg_image_url`` under the server's allow-list, on a thread."""
    s = state.settings
    name, refused, failed, failed_title = _URLS[which]
    try:
        # The thread keeps the deadline itself; the extra second only covers a stuck DNS lookup.
        return await asyncio.wait_for(asyncio.to_thread(fetch, url, s.url_fetch, s.max_bytes, s.url_fetch_timeout),
                                      s.url_fetch_timeout + 1)
    except FetchRefused as exc:
        raise RemoveBgError(refused, f"Invalid {name}", f"{name}: {exc}") from None
    except FetchFailed as exc:
        raise RemoveBgError(failed, failed_title, f"{name}: {exc}") from None
    except asyncio.TimeoutError:
        raise RemoveBgError(failed, failed_title, f"{name}: the download took too long") from None


def _file_part(body: RemoveBgBody, name: str) -> bytes | None:
    if body.fields.get(name, "").strip() and name not in body.files:
        raise RemoveBgError(f"invalid_{name}", f"Invalid {name}", f"{name} must be a file part of a multipart/form-data "
                            "body" + ("; send base64 as image_file_b64" if name == "image_file" else ""))
    return body.files.get(name)


async def _images(body: RemoveBgBody, params: RemoveBgParams, state: AppState) -> tuple[bytes, bytes | None]:
    """The image and the background photo (or None), from whichever source the request used."""
    image = _file_part(body, "image_file")
    if image is None and body.fields.get(B64_FIELD, "").strip():
        image = decode_b64_image(body.fields[B64_FIELD], state.settings.max_bytes)
    if image is None:
        image = await _fetch(params.image_url or "", state, "image")
    _check_input(image)
    background = _file_part(body, "bg_image_file")
    if background is None and params.bg_image_url:
        background = await _fetch(params.bg_image_url, state, "bg")
    if background is not None:
        _check_input(background)
    return image, background


def _headers(result: RemoveBgResult, params: RemoveBgParams) -> dict[str, str]:
    top, left, width, height = result.foreground
    headers = {
        "X-Width": str(result.width), "X-Height": str(result.height), "X-Credits-Charged": "0",
        "X-Foreground-Top": str(top), "X-Foreground-Left": str(left),
        "X-Foreground-Width": str(width), "X-Foreground-Height": str(height),
        "Server-Timing": ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in result.timings.items()),
        "Cache-Control": "no-store",
    }
    if params.type_level != "none":
        # No classifier here: the type asked for, or "other" for auto.
        headers["X-Type"] = params.type if params.type != "auto" else "other"
    return headers


@router.post("/v1.0/removebg", summary="Remove the background (remove.bg's API)", response_class=Response,
             responses=REMOVEBG_RESPONSES, openapi_extra=REMOVEBG_OPENAPI)
async def removebg(request: Request, state: StateDep) -> Response:
    """remove.bg's endpoint: the same parameters, body types, response headers, JSON and
    errors. Point a remove.bg client's base URL here; no credits are counted."""
    received = time.perf_counter()
    await refuse_when_full(request, state.limiter)
    async with state.limiter.admission():
        return await _handle(request, state, received)


async def _handle(request: Request, state: AppState, received: float) -> Response:
    settings = state.settings
    body = await within_upload_timeout(read_removebg_body(request, settings.max_bytes), settings)
    params = parse_params(body.fields, set(body.files))
    session = loaded_session(state)
    image, background = await _images(body, params, state)
    try:
        result = await state.limiter.run(lambda: render(session, image, background, params, settings.max_pixels),
                                         request.is_disconnected)
    except ClientGone:
        log.info("skipped: the client left before its turn (%d bytes)", len(image))
        return Response(status_code=499)
    result.timings["total"] = time.perf_counter() - received
    log.info("removebg: %d bytes %dx%d -> %s %dx%d %d bytes in %.2fs", len(image), *result.source_size,
             result.format, result.width, result.height, len(result.data), result.timings["total"])
    headers = _headers(result, params)
    if _wants_json(request):
        top, left, width, height = result.foreground
        document = RemoveBgJsonResponse.model_validate({"data": {
            "result_b64": base64.b64encode(result.data).decode("ascii"), "foreground_top": top,
            "foreground_left": left, "foreground_width": width, "foreground_height": height}})
        return JSONResponse(document.model_dump(), headers=headers)
    return Response(result.data, media_type=result.media_type, headers=headers)


@router.get("/v1.0/account", summary="Credit balance (remove.bg's API; always 0 here)", response_model=Account,
            responses=ACCOUNT_RESPONSES)
async def account() -> JSONResponse:
    """remove.bg's account document. bgclear counts no credits: every figure is 0, and
    ``data.attributes.note`` says so. Clients that read the balance keep working."""
    return JSONResponse(Account().model_dump(), headers={"Cache-Control": "no-store"})
