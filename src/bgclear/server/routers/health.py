"""``GET /healthz``: ready only once the model has loaded."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..config import ACCEPTED_INPUT_FORMATS
from ..schemas import Health
from ..state import StateDep

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    summary="Readiness and limits",
    responses={503: {"model": Health, "description": "The model is still loading, or failed to load."}},
)
async def healthz(state: StateDep) -> JSONResponse:
    """``status`` is ``ready`` (200) once the model is loaded, else ``loading`` or ``failed`` (503).
    Also states the upload limits, which the web page shows and checks before uploading."""
    s = state.settings
    status = "ready" if state.ready else ("failed" if state.load_error else "loading")
    engine = getattr(state.session.segmenter, "engine", None) if state.ready else None
    body = Health(
        status=status, segmenter=s.segmenter, refiner=s.refiner, detail=state.load_error, threads=s.threads,
        engine=engine.name if engine else None, precision=engine.precision if engine else None,
        device=engine.device if engine else None,
        max_bytes=s.max_bytes, max_pixels=s.max_pixels, accepted_formats=list(ACCEPTED_INPUT_FORMATS),
        max_concurrency=s.max_concurrency, queue_size=s.queue_size,
        running=state.limiter.running, waiting=state.limiter.waiting, auth_required=s.api_keys is not None,
        rate_limit=s.rate_limit.text if s.rate_limit else None, rate_burst=s.rate_limit.burst if s.rate_limit else None,
        edits=len(state.edits), edit_bytes=state.edits.nbytes, edit_max_bytes=state.edits.max_bytes,
        edit_ttl=state.edits.ttl if state.edits.enabled else 0,
    )
    return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503, headers={"Cache-Control": "no-store"})
