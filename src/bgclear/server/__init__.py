"""The HTTP server: ``POST /v1/remove``, ``GET /healthz`` and the web page at ``/``.

A thin shell over :class:`bgclear.Session`. Start it with ``bgclear serve``,
``python -m bgclear.server`` or :func:`run_server`. Uploads are processed in
memory and never written to disk.
"""

from __future__ import annotations

from .app import create_app
from .config import ServerSettings
from .run import run_server, serve_command

__all__ = ["ServerSettings", "create_app", "run_server", "serve_command"]
