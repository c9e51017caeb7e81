"""Starting the server: :func:`run_server` and the ``serve`` click command."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading

import click
from PIL import Image

from ..backends import refiner_names
from ..io.decode import DEFAULT_MAX_PIXELS
from ..engines.base import ENGINE_CHOICES, PRECISION_CHOICES
from ..errors import ModelError
from ..models.registry import get_model
from ..models.store import model_path
from .auth import KeyStore
from .config import (DEFAULT_HOST, DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_QUEUE_SIZE, DEFAULT_UPLOAD_TIMEOUT,
                     ServerSettings)
from .edits import DEFAULT_EDIT_BYTES, DEFAULT_EDIT_ENTRIES, DEFAULT_EDIT_TTL
from .ratelimit import RateLimit
from .url_fetch import DEFAULT_TIMEOUT as DEFAULT_URL_FETCH_TIMEOUT
from .url_fetch import AllowList

log = logging.getLogger("bgclear.server")
#: Seconds a stopping server waits for cutouts in flight before it cancels them.
SHUTDOWN_GRACE_S = 30


def _check_models(segmenter: str, refiner: str) -> None:
    """Fail before binding the port when the model is missing, with the command that fetches it."""
    model_path(get_model(segmenter), verify=False)
    if refiner not in refiner_names():
        raise ModelError(f"unknown refiner {refiner!r}; available: {', '.join(refiner_names())}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _log_access_policy(settings: ServerSettings, key_file: str | None) -> None:
    """Say at start-up who can use the APIs, and how often."""
    keys = settings.api_keys
    if keys is not None:
        log.info("API keys required on /v1/ and /v1.0/ (%d from %s); the page and /healthz stay open",
                 len(keys.digests), key_file)
    elif _is_loopback(settings.host):
        log.info("no API keys (--api-keys FILE), so listening on %s only: nothing else on the network can reach the "
                 "APIs. To serve others, add --api-keys FILE and --host 0.0.0.0", settings.host)
    else:
        log.warning("no API keys and listening on %s: anyone who can reach this address can use the APIs; "
                    "start with --api-keys FILE to require a key", settings.host)
    limit = settings.rate_limit
    if limit is not None:
        log.info("rate limit: %s per %s, in bursts of up to %d (429 beyond it)",
                 limit.text, "API key" if keys is not None else "client address", limit.burst)


def run_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    segmenter: str | None = None,
    refiner: str | None = None,
    max_concurrency: int = 0,
    engine: str = "auto",
    precision: str = "auto",
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    log_level: str = "info",
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
    api_keys: str | os.PathLike | None = None,
    rate_limit: str | None = None,
    burst: int | None = None,
    allow_url_fetch: str | None = None,
    url_fetch_timeout: float = DEFAULT_URL_FETCH_TIMEOUT,
    edit_ttl: float = DEFAULT_EDIT_TTL,
    edit_memory: int = DEFAULT_EDIT_BYTES // 2**20,
    edit_entries: int = DEFAULT_EDIT_ENTRIES,
) -> None:
    """Serve until interrupted. ``max_concurrency=0`` picks one cutout per two cores.
    ``api_keys``: a key file (see :mod:`.auth`); ``rate_limit``: e.g. ``"60/min"``, with ``burst``.
    ``edit_ttl`` / ``edit_memory`` (MiB) / ``edit_entries``: the images held for touch-up (:mod:`.edits`).

    Raises :class:`~bgclear.errors.ModelError` when the model is not installed, :class:`ValueError`
    (:class:`~.auth.KeyFileError`) when the key file or the rate limit cannot be used.
    """
    import uvicorn

    from .app import create_app

    if burst is not None and not rate_limit:
        raise ValueError("--burst applies to a rate limit: give --rate-limit too (for example --rate-limit 60/min)")
    defaults = ServerSettings()
    settings = ServerSettings(
        host=host, port=port, segmenter=segmenter or defaults.segmenter, refiner=refiner or defaults.refiner,
        max_concurrency=max_concurrency, engine=engine, precision=precision, queue_size=queue_size, max_bytes=max_bytes, max_pixels=max_pixels,
        upload_timeout=upload_timeout, log_level=log_level,
        api_keys=KeyStore.load(api_keys) if api_keys is not None else None,
        rate_limit=RateLimit.parse(rate_limit, burst) if rate_limit else None,
        url_fetch=AllowList.parse(allow_url_fetch), url_fetch_timeout=url_fetch_timeout,
        edit_ttl=edit_ttl, edit_max_bytes=edit_memory * 2**20, edit_max_entries=edit_entries,
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The CLI may have configured logging quieter; a server's own level wins.
    logging.getLogger().setLevel(log_level.upper())
    _check_models(settings.segmenter, settings.refiner)
    # This process is ours: Pillow's own limit (2 x MAX_IMAGE_PIXELS, checked while decoding
    # and cropping) must not refuse what --max-pixels allows.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    log.info("bgclear server on http://%s:%d/ (API docs: /docs); %d at once, %d queued, %.0f MB and %.0f MP per image; "
             "uploads are processed in memory and never stored",
             host, port, settings.max_concurrency, settings.queue_size, max_bytes / 1e6, max_pixels / 1e6)
    _log_access_policy(settings, None if api_keys is None else os.fspath(api_keys))
    if settings.url_fetch.enabled:
        log.info("image_url / bg_image_url fetched from: %s (%.0f s, %.0f MB at most)", settings.url_fetch.describe(),
                 url_fetch_timeout, max_bytes / 1e6)
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level=log_level, log_config=None,
        access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    # On SIGTERM/SIGINT uvicorn stops accepting connections, lets requests in flight finish
    # (up to SHUTDOWN_GRACE_S), then re-raises the signal to the handler found at start-up.
    # With Python's default handlers that kills the process (exit -15) or prints a
    # KeyboardInterrupt; a handler that only notes the signal makes a clean stop exit 0.
    stopped_by: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stopped_by.append(signum))
    uvicorn.Server(config).run()
    if stopped_by:
        log.info("stopped by %s after finishing the requests in flight", signal.Signals(stopped_by[0]).name)


@click.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--segmenter", default=None, help="Segmentation model (default: isnet). See 'bgclear models list'.")
@click.option("--refiner", default=None, help="Alpha refiner: guided (default), closed-form, none.")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help="Inference runtime; auto: OpenVINO where the CPU computes bf16 natively, else onnxruntime.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
              help="auto: bf16 where the CPU computes it natively, else f32. int8: the int8 ISNet made at "
                   "pull time, where the network is sure of the photo.")
@click.option("--max-concurrency", default=0, type=click.IntRange(0, 64), help="Cutouts at once (0: one per two cores).")
@click.option("--queue-size", default=DEFAULT_QUEUE_SIZE, show_default=True, type=click.IntRange(0, 1000),
              help="Requests waiting beyond those running; more get 503 with Retry-After.")
@click.option("--max-bytes", default=DEFAULT_MAX_BYTES, show_default=True, type=click.IntRange(1), help="Largest upload in bytes.")
@click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(1), help="Largest width x height.")
@click.option("--upload-timeout", default=DEFAULT_UPLOAD_TIMEOUT, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a client may take to send one upload.")
@click.option("--api-keys", type=click.Path(dir_okay=False), default=None,
              help="File of API keys, one per line (or sha256:HEX); the APIs then need X-Api-Key or Authorization: Bearer.")
@click.option("--rate-limit", default=None, metavar="N/UNIT",
              help="Requests per API key (per client address without keys), e.g. 60/min; 429 beyond it. Default: none.")
@click.option("--burst", default=None, type=click.IntRange(1), help="Requests a client may make at once (default: 10, "
              "or fewer when the rate is lower).")
@click.option("--allow-url-fetch", default=None, metavar="HOST[,HOST...]",
              help="Let the remove.bg API fetch image_url / bg_image_url from these hosts (names, IPs or CIDR networks; "
              "'*': any public host). Off by default. Loopback and private addresses only when listed as addresses.")
@click.option("--url-fetch-timeout", default=DEFAULT_URL_FETCH_TIMEOUT, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds one URL fetch may take, redirects included.")
@click.option("--edit-ttl", default=DEFAULT_EDIT_TTL, show_default=True, type=click.FloatRange(min=0),
              help="Seconds an image held for touch-up clicks (edit=true) lives after its last use; 0: hold none.")
@click.option("--edit-memory", default=DEFAULT_EDIT_BYTES // 2**20, show_default=True, type=click.IntRange(0),
              help="MiB of memory for images held for touch-up; the least recently used go first beyond it.")
@click.option("--edit-entries", default=DEFAULT_EDIT_ENTRIES, show_default=True, type=click.IntRange(0),
              help="Images held for touch-up at most.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False))
def serve_command(**options) -> None:  # type: ignore[no-untyped-def]
    """Serve the web page and the HTTP API (POST /v1/remove). Uploads stay in memory."""
    from ..process import prefer_small_pages

    prefer_small_pages()
    try:
        run_server(**options)
    except (ModelError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
