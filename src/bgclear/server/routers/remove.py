"""``POST /v1/remove``: an image in, the cutout out (remove.bg-style options)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ... import Cutout, InputError, Session
from ...io.decode import SNIFF_BYTES, accepted_formats_text, sniff_format
from ...io.encode import MIME_TYPES
from ...pipeline import Prepared
from ..config import ACCEPTED_INPUT_FORMATS, ServerSettings
from ..edits import EditStore
from ..errors import APIError
from ..limiter import ClientGone, Limiter
from ..openapi import REMOVE_OPENAPI, REMOVE_RESPONSES
from ..schemas import RemoveOptions, RemoveResult, parse_options
from ..state import AppState, StateDep, loaded_session
from ..upload import discard_body, read_upload

log = logging.getLogger("bgclear.server")
router = APIRouter(tags=["remove"])
PREVIEW_EDGE = 1000
T = TypeVar("T")


@dataclass
class Rendered:
    """What a worker thread hands back: the encoded file and what the headers report."""

    data: bytes
    width: int
    height: int
    cutout: Cutout
    foreground_bbox: tuple[int, int, int, int] | None
    started: float  # when a worker picked the request up (perf_counter)
    edit_id: str | None = None  # the handle under which the prepared image is held, if it is


def _render(session: Session, source: bytes | Prepared, opts: RemoveOptions, settings: ServerSettings,
            edits: EditStore, edit_id: str | None = None) -> Rendered:
    """Runs on a worker thread: the engine does all the work, this only picks its options.

    ``source``: the uploaded bytes, or an image held under ``edit_id``. With ``opts.edit`` an
    uploaded image is held in ``edits`` once its cutout succeeded.
    """
    started = time.perf_counter()
    fmt = opts.image_format
    mask = opts.channels == "alpha"
    # JPEG has no alpha: flatten through the engine's compose (which keeps the shadow)
    # rather than letting the encoder flatten onto white afterwards.
    background = opts.bg_color or ("white" if fmt == "jpg" and not mask else None)
    if isinstance(source, Prepared):
        prepared = source
    else:  # a touch-up keeps the work on the image in the session's cache: the next click resends it
        prepared = session.prepare(source, max_pixels=settings.max_pixels, reuse=opts.has_prompts or opts.edit)
    # A touch-up's preview (a click on the page) is matted at preview size, so a click costs the
    # same on a 12 MP photo as on a small one; the download asks for the full size.
    touch_up_preview = opts.size == "preview" and (opts.has_prompts or opts.edit or isinstance(source, Prepared))
    cutout = session.finish(prepared, background=background, shadow=True if opts.shadow else None,
                            crop=opts.crop, crop_margin=opts.crop_margin, max_side=PREVIEW_EDGE if touch_up_preview else None,
                            **opts.prompts)  # type: ignore[arg-type]
    if prepared is source:  # decoding and segmenting were an earlier request's work, not this one's
        for stage in prepared.timings:
            cutout.timings.pop(stage, None)
    if edit_id is None and opts.edit:
        edit_id = edits.put(prepared)
    encoded, (width, height) = cutout.render(fmt, quality=opts.quality, mask=mask,
                                             max_side=PREVIEW_EDGE if opts.size == "preview" else None)
    return Rendered(encoded, width, height, cutout, cutout.foreground_bbox, started, edit_id)


def _wants_json(request: Request, opts: RemoveOptions) -> bool:
    if opts.format == "json":
        return True
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "image/" not in accept


def _ascii_header(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)


def _check_input(data: bytes) -> str:
    """The upload's format from its bytes, or a refusal a person can act on."""
    if not data:
        raise InputError("empty", "the upload is empty (0 bytes); choose an image file")
    fmt = sniff_format(data[:SNIFF_BYTES])
    if fmt in ACCEPTED_INPUT_FORMATS:
        return fmt
    accepted = accepted_formats_text(ACCEPTED_INPUT_FORMATS)
    if fmt is not None:
        raise InputError("unsupported_format", f"the file is a {fmt} image; this server accepts {accepted}. Convert it and try again.")
    if data[4:8] == b"ftyp":
        raise InputError("unsupported_format", f"the file is a video or another ISO media file, not a HEIC or AVIF "
                         f"photo; this server accepts {accepted}")
    raise InputError("unsupported_format", f"the file is not an image this server reads; it accepts {accepted}")


@router.post(
    "/v1/remove",
    summary="Remove the background of one image",
    response_class=Response,
    responses=REMOVE_RESPONSES,
    openapi_extra=REMOVE_OPENAPI,
)
async def remove_background(request: Request, state: StateDep) -> Response:
    """Send the image as multipart form field ``image_file`` (or ``file``), or as the raw
    request body. Options go in the query string or as form fields. Returns a transparent
    PNG at the source's full resolution unless the options say otherwise."""
    received = time.perf_counter()
    await refuse_when_full(request, state.limiter)
    async with state.limiter.admission():
        return await _handle(request, state, received)


async def refuse_when_full(request: Request, limiter: Limiter) -> None:
    """503 with Retry-After at once when the queue is full."""
    if limiter.full:
        # Read and drop the body first, so the client hears the 503 rather than a reset.
        closing = await discard_body(request)
        error = limiter.busy_error()
        error.headers.update(closing)
        log.warning("refused: busy (%d running, %d waiting)", limiter.running, limiter.waiting)
        raise error


async def within_upload_timeout(reading: Awaitable[T], settings: ServerSettings) -> T:
    """The upload read by ``reading``, or 408 when it takes longer than the server allows."""
    try:
        return await asyncio.wait_for(reading, settings.upload_timeout)
    except asyncio.TimeoutError:
        raise APIError("upload_timeout", f"the upload did not arrive within {settings.upload_timeout:g} s; "
                       "check the connection and try again", headers={"Connection": "close"}) from None


async def _handle(request: Request, state: AppState, received: float) -> Response:
    settings = state.settings
    upload = await within_upload_timeout(read_upload(request, settings.max_bytes, settings.max_body_bytes), settings)
    opts, notes = parse_options(request.query_params.multi_items(), upload.items)
    session = loaded_session(state)
    in_format = _check_input(upload.data)
    uploaded = time.perf_counter()
    try:
        rendered = await state.limiter.run(lambda: _render(session, upload.data, opts, settings, state.edits),
                                           request.is_disconnected)
    except ClientGone:
        log.info("skipped: the client left before its turn (%d bytes %s)", len(upload.data), in_format)
        return Response(status_code=499)  # nobody reads it; the code is nginx's "client closed request"
    return respond(request, opts, rendered, notes, received, uploaded, f"{len(upload.data)} bytes {in_format}",
                   state.edits)


def respond(request: Request, opts: RemoveOptions, rendered: Rendered, notes: list[str], received: float,
            uploaded: float, what: str, edits: EditStore) -> Response:
    """The cutout as the image file (or JSON), with the headers that describe it; logs one line
    naming ``what`` came in (sizes and formats, never a name or pixels)."""
    cutout = rendered.cutout
    timings = {"upload": uploaded - received, "queue": rendered.started - uploaded, **cutout.timings}
    timings = {k: round(v, 4) for k, v in timings.items()}
    timings["total"] = round(time.perf_counter() - received, 4)
    warnings = notes + list(cutout.warnings)
    src_w, src_h = cutout.size
    log.info("cutout: %s %dx%d -> %s %dx%d %d bytes in %.2fs%s", what, src_w, src_h, opts.image_format,
             rendered.width, rendered.height, len(rendered.data), timings["total"],
             " (touched up)" if opts.has_prompts else "")
    bbox = rendered.foreground_bbox
    headers = {
        "X-Width": str(rendered.width), "X-Height": str(rendered.height),
        "X-Source-Width": str(src_w), "X-Source-Height": str(src_h),
        "X-Warnings": _ascii_header(warnings),
        "Server-Timing": ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in timings.items()),
        "Cache-Control": "no-store",
    }
    if rendered.edit_id is not None:
        headers.update({"X-Edit-Id": rendered.edit_id, "X-Edit-Expires-In": f"{edits.ttl:g}"})
    if bbox is not None:
        left, top, right, bottom = bbox
        headers.update({"X-Foreground-Left": str(left), "X-Foreground-Top": str(top),
                        "X-Foreground-Width": str(right - left), "X-Foreground-Height": str(bottom - top)})
    if _wants_json(request, opts):
        body = RemoveResult(
            image=base64.b64encode(rendered.data).decode("ascii"), format=opts.image_format,  # type: ignore[arg-type]
            width=rendered.width, height=rendered.height, source_width=src_w, source_height=src_h,
            foreground_bbox=list(bbox) if bbox else None,
            crop_box=list(cutout.crop_box) if cutout.crop_box else None,
            timings=timings, warnings=warnings, edit_id=rendered.edit_id,
        )
        return JSONResponse(body.model_dump(), headers=headers)
    return Response(rendered.data, media_type=MIME_TYPES[opts.image_format], headers=headers)
