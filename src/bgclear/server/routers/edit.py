"""``POST /v1/remove/{edit_id}``: a touch-up of an image the server already holds.

The page's fast path: ``POST /v1/remove?edit=true`` answers a handle (``X-Edit-Id``),
and each click then sends only its points (all of them so far) and the output
options. The answer is the one ``POST /v1/remove`` gives for the image with the
same points. An unknown or expired handle is ``404 edit_expired``: send the image
again, with every point, to ``POST /v1/remove?edit=true``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..config import FORM_OVERHEAD_BYTES
from ..errors import APIError
from ..limiter import ClientGone
from ..openapi import EDIT_OPENAPI, EDIT_RESPONSES
from ..schemas import parse_options
from ..state import StateDep, loaded_session
from ..upload import read_fields
from .remove import _render, refuse_when_full, respond, within_upload_timeout

router = APIRouter(tags=["remove"])


def expired(edit_id: str) -> APIError:
    return APIError("edit_expired", "this server holds no image under that edit handle (it expired, was evicted, "
                    "or another server holds it): send the image again with all the points to POST /v1/remove "
                    "with edit=true, which answers a new handle")


@router.post("/v1/remove/{edit_id}", summary="Touch up a held image: only points and options, no upload",
             response_class=Response, responses=EDIT_RESPONSES, openapi_extra=EDIT_OPENAPI)
async def edit_cutout(edit_id: str, request: Request, state: StateDep) -> Response:
    """``keep``, ``drop``, ``box`` and the output options of ``POST /v1/remove``, in the query
    string or as form fields (multipart or urlencoded); send every point so far, not only
    the new one. Answers as ``POST /v1/remove`` does for the same image and options, with
    the handle (whose time to live starts again) in ``X-Edit-Id``."""
    received = time.perf_counter()
    await refuse_when_full(request, state.limiter)
    async with state.limiter.admission():
        settings = state.settings
        fields = await within_upload_timeout(read_fields(request, FORM_OVERHEAD_BYTES), settings)
        opts, notes = parse_options(request.query_params.multi_items(), fields)
        session = loaded_session(state)
        prepared = state.edits.get(edit_id)
        if prepared is None:
            raise expired(edit_id)
        uploaded = time.perf_counter()
        try:
            rendered = await state.limiter.run(
                lambda: _render(session, prepared, opts, settings, state.edits, edit_id), request.is_disconnected)
        except ClientGone:
            return Response(status_code=499)
        return respond(request, opts, rendered, notes, received, uploaded, "held image", state.edits)


@router.delete("/v1/remove/{edit_id}", summary="Forget a held image now", status_code=204,
               responses={204: {"description": "Forgotten (or it was not held)."}})
async def forget(edit_id: str, state: StateDep) -> Response:
    """Drop the image held under ``edit_id`` at once rather than at its expiry (the page does
    this when a photo is taken off the list). Answers 204 whether or not it was held."""
    state.edits.drop(edit_id)
    return Response(status_code=204)
