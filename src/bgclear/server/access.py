"""Who may call the APIs, and how often: the dependency every route runs first.

On the API paths (:data:`.auth.API_PREFIXES`) it checks the API key when keys are
configured (403), then takes a token from the client's bucket when a rate limit is
configured (429), before any of the upload is read. A refusal drains the body first,
as the busy refusal does, so the client hears the answer instead of a reset.
Refusals are :class:`~.errors.APIError`, so every endpoint renders them in its own shape.
"""

from __future__ import annotations

from fastapi import Request

from .auth import authenticate, is_api_path
from .errors import APIError
from .ratelimit import STATE_KEY
from .state import get_state
from .upload import discard_body


def client_address(request: Request) -> str:
    """The peer's address (uvicorn has already applied X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


async def api_guard(request: Request) -> None:
    """Authenticate and rate-limit API requests; other paths pass untouched."""
    if not is_api_path(request.url.path):
        return
    state = get_state(request)
    try:
        identity: object = ("addr", client_address(request))
        if state.settings.api_keys is not None:
            identity = ("key", authenticate(state.settings.api_keys, request))
        if state.rate_limiter is not None:
            decision = state.rate_limiter.take(identity)
            headers = decision.headers()
            setattr(request.state, STATE_KEY, headers)
            if not decision.allowed:
                limit = state.rate_limiter.limit
                who = "API key" if identity[0] == "key" else "client address"  # type: ignore[index]
                raise APIError("rate_limited", f"too many requests: this server allows {limit.text} per {who}, "
                               f"in bursts of up to {limit.burst}; try again in {headers['Retry-After']} s",
                               headers=dict(headers))
    except APIError as error:
        error.headers.update(await discard_body(request))
        raise
