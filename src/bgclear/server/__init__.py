"""The HTTP server: ``POST /v1/remove``, ``GET /healthz`` and the web page at ``/``.

A thin shell over :class:`bgclear.Session`. Start it with ``bgclear serve``,
``python -m bgclear.server`` or :func:`run_server`. Uploads are processed in
memory and never written to disk.
"""

from __future__ import annotations

from typing import Any

from .config import ServerSettings
from .run import run_server, serve_command

__all__ = ["ServerSettings", "create_app", "run_server", "serve_command"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the app is built, so the CLI can register
    # `serve` without the server extra installed or its import cost.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
