"""Run hostile-corpus cases through the library in worker processes, each case under a time bound.

``check(case, full, session)`` is the verdict for one case in this process;
``run_pool(cases, ...)`` runs many in ``workers`` subprocesses, kills and replaces a
worker that overruns ``timeout`` (a hang) or dies (a crash), and returns one
:class:`Result` per case. Used by tests/test_hostile_library.py and
benchmarks/hostile_library.py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from hostile_corpus import Case, build_corpus  # noqa: E402

#: Address-space cap per worker: a decode that tries to allocate more fails fast
#: (MemoryError -> must become InputError) instead of swapping the machine.
WORKER_MEMORY_LIMIT = 6 * 1024 ** 3


@dataclass
class Result:
    name: str
    verdict: str  # "pass" | "fail"
    outcome: str  # "ok" | "refused:<code>" | "error:<type>" | "hang" | "crash"
    detail: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


def check(case: Case, full: bool, session=None) -> tuple[str, str, str]:
    """(verdict, outcome, detail) for one case, in this process."""
    import numpy as np

    from bgclear.io.decode import decode
    from bgclear.errors import INPUT_ERROR_CODES, InputError

    try:
        decoded = decode(case.data)
        w, h = decoded.size
        rgb = decoded.rgb
        problems = []
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or not rgb.flags.c_contiguous or w < 1 or h < 1:
            problems.append(f"bad rgb array {rgb.dtype} {rgb.shape}")
        a = decoded.source_alpha
        if a is not None and (a.shape != (h, w) or a.dtype != np.float32 or not (0 <= float(a.min()) <= float(a.max()) <= 1)):
            problems.append(f"bad alpha {a.dtype} {a.shape}")
        if full and not problems:
            cutout = session.remove(case.data)
            px = cutout.pixels
            if px.dtype != np.uint8 or px.shape != (h, w, 4):
                problems.append(f"cutout {px.dtype} {px.shape}, expected ({h}, {w}, 4)")
            else:
                import io

                from PIL import Image

                png = Image.open(io.BytesIO(cutout.encode("png")))
                if png.mode != "RGBA" or png.size != (w, h):
                    problems.append(f"PNG {png.mode} {png.size}, expected RGBA {(w, h)}")
        outcome = "ok"
        if problems:
            return "fail", outcome, "; ".join(problems)
        if case.expect == "refuse":
            return "fail", outcome, "expected a refusal, got an image"
        return "pass", outcome, f"{w}x{h}"
    except InputError as exc:
        outcome = f"refused:{exc.code}"
        if exc.code not in INPUT_ERROR_CODES or len(exc.message) < 15:
            return "fail", outcome, f"imprecise message: {exc.message!r}"
        if case.expect == "ok":
            return "fail", outcome, f"expected a cutout: {exc.message}"
        if case.code and exc.code != case.code:
            return "fail", outcome, f"expected code {case.code}: {exc.message}"
        return "pass", outcome, exc.message
    except Exception as exc:  # noqa: BLE001 - exactly what this hunts for
        return "fail", f"error:{exc.__class__.__name__}", traceback.format_exc(limit=6)


def _worker(conn, full: bool) -> None:
    os.environ.setdefault("BGCLEAR_THREADS", "1")
    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_LIMIT, WORKER_MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    cases = build_corpus()
    index = {c.name: c for c in cases}
    session = None
    if full:
        from bgclear import Session

        session = Session(segmenter="u2netp")
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        name, full_case = job
        t = time.perf_counter()
        verdict, outcome, detail = check(index[name], full and full_case, session)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((verdict, outcome, detail, time.perf_counter() - t, rss))


class _Slot:
    def __init__(self, ctx, full: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, full), daemon=True)
        self.proc.start()
        child.close()
        self.job: tuple[str, float] | None = None
        self.ready = False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


def run_pool(cases: list[Case], workers: int = 2, timeout: float = 30.0, full: set[str] | bool = False,
             progress: bool = False) -> list[Result]:
    """Each case in a worker process; a case over ``timeout`` seconds is a hang, a dead worker a crash.

    ``full``: True for the whole pipeline on every case, or a set of case names to run
    through ``Session.remove`` (u2netp); the others are decoded only.
    """
    ctx = mp.get_context("spawn")
    any_full = bool(full)
    todo = list(cases)
    results: dict[str, Result] = {}
    slots = [_Slot(ctx, any_full) for _ in range(max(1, workers))]
    start_deadline = time.monotonic() + 120
    try:
        while todo or any(s.job for s in slots):
            for i, s in enumerate(slots):
                if not s.ready:
                    if s.conn.poll(0):
                        s.conn.recv()
                        s.ready = True
                    elif time.monotonic() > start_deadline:
                        raise RuntimeError("a worker did not start")
                    continue
                if s.job is None and todo:
                    case = todo.pop(0)
                    run_full = full is True or (isinstance(full, set) and case.name in full)
                    s.conn.send((case.name, run_full))
                    s.job = (case.name, time.monotonic())
                elif s.job is not None:
                    name, started = s.job
                    if s.conn.poll(0):
                        try:
                            verdict, outcome, detail, secs, rss = s.conn.recv()
                            results[name] = Result(name, verdict, outcome, detail, secs, rss)
                            s.job = None
                            if progress and len(results) % 100 == 0:
                                print(f"  {len(results)}/{len(cases)}", flush=True)
                            continue
                        except (EOFError, OSError):
                            pass
                    dead = not s.proc.is_alive()
                    if dead or time.monotonic() - started > timeout:
                        outcome = "crash" if dead else "hang"
                        detail = f"worker exit code {s.proc.exitcode}" if dead else f"over {timeout:g}s"
                        results[name] = Result(name, "fail", outcome, detail, time.monotonic() - started)
                        s.kill()
                        slots[i] = _Slot(ctx, any_full)
                        start_deadline = time.monotonic() + 120
            time.sleep(0.002)
    finally:
        for s in slots:
            try:
                s.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            s.proc.join(2)
            s.kill()
    return [results[c.name] for c in cases]


# ---------------------------------------------------------------- through a server --

def _server_accepts(data: bytes) -> bool:
    """Whether the server takes this format (its list is the decoder's); other images get 415."""
    from bgclear.io.decode import SNIFF_BYTES, sniff_format
    from bgclear.server.config import ACCEPTED_INPUT_FORMATS

    return sniff_format(data[:SNIFF_BYTES]) in ACCEPTED_INPUT_FORMATS


@dataclass
class ServerResult:
    name: str
    verdict: str
    status: int  # HTTP status, 0 when the connection failed
    detail: str = ""


def server_check(client, case: Case) -> ServerResult:
    """POST one case; a 2xx with a correct cutout or a 4xx JSON error, never a 5xx or a dropped connection."""
    import io

    import httpx
    from PIL import Image

    from bgclear.io.decode import decode
    from bgclear.errors import InputError

    try:
        r = client.post("/v1/remove", files={"image_file": ("upload.bin", case.data, "application/octet-stream")})
    except httpx.HTTPError as exc:
        return ServerResult(case.name, "fail", 0, f"connection failed: {exc.__class__.__name__}: {exc}")
    status = r.status_code
    if status >= 500:
        return ServerResult(case.name, "fail", status, r.text[:300])
    if 400 <= status < 500:
        try:
            error = r.json()["error"]
            assert isinstance(error["code"], str) and len(error["message"]) > 10
        except Exception:  # noqa: BLE001
            return ServerResult(case.name, "fail", status, f"4xx without a JSON error body: {r.text[:200]!r}")
        accepted = _server_accepts(case.data)
        if case.expect == "ok" and accepted:
            return ServerResult(case.name, "fail", status, f"expected a cutout: {error}")
        return ServerResult(case.name, "pass", status, error["code"])
    if status != 200:
        return ServerResult(case.name, "fail", status, "unexpected status")
    if case.expect == "refuse" or not _server_accepts(case.data):
        return ServerResult(case.name, "fail", status, "expected a refusal, got a cutout")
    try:
        img = Image.open(io.BytesIO(r.content))
        img.load()
    except Exception as exc:  # noqa: BLE001
        return ServerResult(case.name, "fail", status, f"the answer is not an image: {exc}")
    try:
        want = decode(case.data).size
    except InputError:
        want = None
    if img.mode != "RGBA" or (want is not None and img.size != want):
        return ServerResult(case.name, "fail", status, f"cutout {img.mode} {img.size}, source {want}")
    return ServerResult(case.name, "pass", status, f"{img.size}")


def normal_request_ok(client, image: bytes) -> bool:
    """The server still makes a cutout of an ordinary photo."""
    import httpx

    try:
        r = client.post("/v1/remove", files={"image_file": ("photo.png", image, "image/png")})
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.headers.get("content-type") == "image/png"
