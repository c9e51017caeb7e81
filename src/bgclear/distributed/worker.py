"""The worker (one loaded model, reused for every file) and the local process pool that runs it without Ray."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..batch import BatchJob, process_one
from ..errors import BgclearError
from .common import CRASH_RETRIES, NO_RESULT, ROW_FIELDS
from .inputs import WorkItem, output_is_complete

log = logging.getLogger("bgclear")



class WorkerInitError(BgclearError):
    """A worker could not start (its model is missing, the device unusable...): the job cannot go on."""


def check_can_start(job: BatchJob) -> None:
    """Raise :class:`~bgclear.errors.ModelError` in a second when a worker here could not start.

    The segmenter's file must be installed and the engine asked for must exist; the
    full load (and its checksum) is left to the workers themselves.
    """
    from ..engines import EngineOptions, choose
    from ..models.int8 import quantized_model
    from ..models.registry import get_model
    from ..models.store import model_path

    spec = get_model(job.segmenter)
    if spec.kind == "segmenter" and (spec.source is not None or "path" in spec.extra):
        model_path(spec, verify=False)
    choose(EngineOptions(engine=job.engine, precision=job.precision, device=job.device),
           int8=quantized_model(spec, verify=False) is not None)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


class CutoutWorker:
    """One loaded model and what to do with each file: Ray Data's callable class, and the pool's per-process state.

    ``threads`` caps the threads this worker's inference and filters use, so that
    workers sharing a machine share its cores instead of each spawning one thread per core.
    """

    def __init__(self, job: BatchJob, resume: bool = True, threads: int | None = None) -> None:
        from ..process import prefer_small_pages

        prefer_small_pages()
        if threads:
            import cv2

            cv2.setNumThreads(threads)
        from ..pipeline import get_session

        self.job = job
        self.resume = resume
        self.node = _node_name()
        self.pid = os.getpid()
        try:
            self.session = get_session(job.segmenter, job.refiner, job.device, job.engine, job.precision, threads,
                                       second_opinion=job.second_opinion)
        except Exception as exc:  # noqa: BLE001 - surfaced to the driver as one clear error
            raise WorkerInitError(f"a worker on {self.node} could not load the models: {exc}") from exc
        # What this worker really runs (``auto`` resolved on its own node's CPU), for the report.
        self.engine, self.precision = _engine_of(self.session)
        self.threads = int(self.session.options.threads or 0)  # 0: the runtime's default

    def process(self, index: int, src: str, dest: str) -> dict[str, Any]:
        """Cut out one file (or skip it when its output is complete); never raises."""
        start = time.perf_counter()
        status, reason, warnings = "done", "", []
        try:
            if self.resume and output_is_complete(src, dest, self.job):
                status = "skipped"
            else:
                warnings = process_one(self.session, Path(src), Path(dest), self.job)
        except BgclearError as exc:
            status, reason = "failed", str(exc)
        except OSError as exc:
            status, reason = "failed", str(exc) or exc.__class__.__name__
        except MemoryError:
            status, reason = "failed", "out of memory"
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the job
            status, reason = "failed", f"unexpected {exc.__class__.__name__}: {exc}"
        return {
            "index": index, "status": status, "reason": reason, "seconds": round(time.perf_counter() - start, 3),
            "warnings": "\n".join(warnings), "node": self.node, "pid": self.pid, "peak_rss_mb": _peak_rss_mb(),
            "engine": self.engine, "precision": self.precision, "threads": self.threads,
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ray Data ``map_batches`` entry: a batch of (index, src, dest) in, status rows out."""
        import numpy as np

        rows = [self.process(int(i), str(s), str(d)) for i, s, d in zip(batch["index"], batch["src"], batch["dest"])]
        return {name: np.array([row[name] for row in rows]) for name in ROW_FIELDS}


def _engine_of(session) -> tuple[str, str]:
    """(engine, precision) the session's segmenter was loaded with, after any fall-back."""
    engine = getattr(session.segmenter, "engine", None)
    if engine is None:  # a PyTorch segmenter
        return "torch", ""
    return str(engine.name), str(engine.precision)


def _node_name() -> str:
    """The node a worker runs on: its Ray node address when in Ray, else the host name."""
    if "ray" in sys.modules:
        try:
            import ray

            if ray.is_initialized():
                return ray.util.get_node_ip_address()
        except Exception:  # noqa: BLE001 - a name for the report is not worth failing over
            pass
    return socket.gethostname()


# --- the process pool (no Ray) -----------------------------------------------------

_pool_worker: CutoutWorker | None = None
_pool_config: tuple[BatchJob, bool, int] | None = None


def _pool_init(job: BatchJob, resume: bool, threads: int) -> None:
    """Runs in each pool process: remember the job; die with the parent (Linux) instead of lingering."""
    global _pool_config
    _pool_config = (job, resume, threads)
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pool_task(index: int, src: str, dest: str) -> dict[str, Any]:
    global _pool_worker
    if _pool_worker is None:
        assert _pool_config is not None
        job, resume, threads = _pool_config
        _pool_worker = CutoutWorker(job, resume, threads)  # once per process, on its first file
    return _pool_worker.process(index, src, dest)


def run_on_pool(items: list[WorkItem], job: BatchJob, sink: Callable[[dict[str, Any]], None], *,
                workers: int, threads: int, resume: bool) -> None:
    """Process ``items`` on ``workers`` processes, at most two files per worker in flight.

    A process that dies (a crash, the kernel's OOM killer) breaks the pool: the files it
    held are tried again in a fresh pool, and reported once they have killed a worker
    :data:`CRASH_RETRIES` + 1 times.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork: onnxruntime's threads do not survive one
    pending = list(reversed(items))  # a stack: pop() takes them in order
    attempts: dict[int, int] = {}
    while pending:
        broken = False
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_init,
                                 initargs=(job, resume, threads)) as pool:
            running: dict[Future, WorkItem] = {}
            while (pending or running) and not broken:
                while pending and len(running) < 2 * workers:
                    item = pending.pop()
                    running[pool.submit(_pool_task, item.index, item.src, item.dest)] = item
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    try:
                        sink(future.result())
                    except WorkerInitError:
                        raise
                    except BrokenProcessPool:
                        broken = True
                        running[future] = item  # handled with the others below
            if broken:
                for future, item in running.items():
                    if future.done() and not future.exception():
                        sink(future.result())
                        continue
                    attempts[item.index] = attempts.get(item.index, 0) + 1
                    if attempts[item.index] > CRASH_RETRIES:
                        sink(_failed_row(item, NO_RESULT))
                    else:
                        pending.append(item)
                pool.shutdown(wait=False, cancel_futures=True)


def _failed_row(item: WorkItem, reason: str) -> dict[str, Any]:
    return {"index": item.index, "status": "failed", "reason": reason, "seconds": 0.0, "warnings": "",
            "node": "", "pid": 0, "peak_rss_mb": 0.0, "engine": "", "precision": "", "threads": 0}


