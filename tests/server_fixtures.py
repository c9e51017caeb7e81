"""Helpers for the server and browser tests: synthetic images and a real server process.

Not a conftest: the test modules import what they use, so these fixtures stay
out of other people's tests.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def disc_image(width: int = 640, height: int = 480, fmt: str = "PNG", **save: object) -> bytes:
    """A red-orange disc on a plain blue background, encoded as ``fmt``."""
    yy, xx = np.mgrid[0:height, 0:width]
    r = min(width, height) * 0.3
    inside = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 <= r * r
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = (40, 120, 200)
    pixels[inside] = (230, 80, 40)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **save)
    return buf.getvalue()


def photo_like(width: int = 1600, height: int = 1200, seed: int = 7) -> Image.Image:
    """A synthetic product photo: a lit, glossy fruit with a leaf on a studio backdrop.

    Shaded with a Lambert term plus a specular highlight, a soft contact shadow
    and sensor noise, so it looks like a photograph rather than a flat drawing.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Backdrop: warm grey sweep, lighter at the top.
    t = yy / height
    backdrop = np.dstack([222 - 40 * t, 214 - 44 * t, 204 - 50 * t])
    cx, cy, r = width * 0.5, height * 0.56, min(width, height) * 0.3
    # Contact shadow on the floor.
    d = ((xx - cx) / (r * 1.15)) ** 2 + ((yy - (cy + r * 0.92)) / (r * 0.22)) ** 2
    backdrop *= (1 - 0.45 * np.exp(-d * 1.6))[..., None]
    img = backdrop
    # The fruit: a slightly squashed sphere.
    nx, ny = (xx - cx) / r, (yy - cy) / (r * 0.95)
    rr = nx ** 2 + ny ** 2
    nz = np.sqrt(np.clip(1 - rr, 0, 1))
    light = np.array([-0.45, -0.6, 0.66], np.float32)
    lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    spec = np.clip(nx * -0.3 + ny * -0.4 + nz * 0.87, 0, 1) ** 40
    base = np.array([200, 38, 30], np.float32)
    fruit = base * (0.25 + 0.8 * lambert)[..., None] + 255 * 0.75 * spec[..., None]
    edge = np.clip((1 - np.sqrt(rr)) * r / 1.5, 0, 1)  # one-and-a-half-pixel anti-aliased rim
    img = img * (1 - edge[..., None]) + fruit * edge[..., None]
    # A stem, then a leaf: an ellipse tilted up from the stem's top.
    stem = (np.abs(xx - (cx + r * 0.02) - (cy - r * 0.9 - yy) * 0.25) < r * 0.028) & (yy > cy - r * 1.15) & (yy < cy - r * 0.88)
    img[stem] = (92, 62, 35)
    lx, ly = xx - (cx + r * 0.42), yy - (cy - r * 1.26)
    c, s = np.cos(np.radians(-20)), np.sin(np.radians(-20))
    u, v = (lx * c + ly * s) / (r * 0.38), (-lx * s + ly * c) / (r * 0.14)
    leaf_d = np.sqrt(u ** 2 + v ** 2)
    leaf_a = np.clip((1 - leaf_d) * r * 0.14 / 1.5, 0, 1)
    leaf = np.dstack([60 + 40 * (1 - v), 140 + 30 * (1 - np.abs(v)), 50 + 0 * v])
    img = img * (1 - leaf_a[..., None]) + leaf * leaf_a[..., None]
    img += rng.normal(0, 2.5, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A ``python -m bgclear.server`` process on a loopback port."""

    port: int
    proc: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(
    log_path: Path,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    prelude: str = "",
    timeout: float = 60.0,
    wait_ready: bool = True,
) -> ServerProcess:
    """Start the server (segmenter u2netp) and wait until /healthz says ready
    (or, with ``wait_ready=False``, until it answers at all).

    ``prelude``: Python run in the server process before the server module, e.g.
    to install an audit hook. The log goes to ``log_path`` (outside the folders a
    test watches).
    """
    import httpx

    port = free_port()
    argv = ["--port", str(port), "--segmenter", "u2netp", "--log-level", "info", *args]
    code = f"{prelude}\nimport runpy, sys\nsys.argv = ['bgclear.server', *{argv!r}]\nrunpy.run_module('bgclear.server', run_name='__main__')\n"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd or REPO, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    server = ServerProcess(port, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.log()}")
        try:
            status = httpx.get(f"{server.url}/healthz", timeout=2).json().get("status")
            if status == "ready" or not wait_ready:
                return server
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not become ready in {timeout}s:\n{server.log()}")


@contextmanager
def served(log_path: Path, *args: str, **options) -> Iterator[ServerProcess]:
    """:func:`start_server` for a ``with`` block: the server stops at its end."""
    server = start_server(log_path, *args, **options)
    try:
        yield server
    finally:
        server.stop()


#: Run inside a server process: reports every file the process opens for writing,
#: creates, renames or deletes, as 'AUDIT-WRITE ...' lines in its log. Python-level
#: only; the tests also watch the working and temporary folders for C-level writes.
#: One folder is exempt: OpenVINO's compiled-network cache, written at model load, whose
#: contents are a function of the model file and the CPU, never of an upload.
AUDIT_PRELUDE = r'''
import os, sys
from bgclear.engines.openvino import compile_cache_dir
_EXEMPT = str(compile_cache_dir().parent.parent) + os.sep
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.rename", "os.remove", "os.mkdir", "os.truncate", "shutil.copyfile", "shutil.move",
           "tempfile.mkstemp", "tempfile.mkdtemp", "os.symlink", "os.link"}
def _audit(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writing and not str(path).startswith(("/dev/", _EXEMPT)):
            sys.__stderr__.write(f"AUDIT-WRITE open {path!r} {mode!r}\n")
    elif event in _EVENTS and not (args and str(args[0]).startswith(_EXEMPT)):
        sys.__stderr__.write(f"AUDIT-WRITE {event} {args!r}\n")
sys.addaudithook(_audit)
'''
