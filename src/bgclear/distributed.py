"""Batch cutouts at scale: ``bgclear batch SRC DST`` on Ray Data, or on a local process pool.

Paths travel through the job, pixels never do: a worker reads its file, cuts it
out with exactly the code of ``bgclear remove`` (:func:`bgclear.batch.process_one`,
atomic write) and hands back a small status row. Each worker loads the model once
(a Ray Data actor pool, ``map_batches`` with the callable class :class:`CutoutWorker`;
without Ray, one per process of a process pool), so memory follows the number of
workers, not the number of files.

A file that fails is reported with its reason and never stops the job; a worker
that dies on a file is restarted and the file reported. Outputs that are already
complete and valid (they decode, at the size the source gives) are skipped, so a
killed job resumes where it stopped; a JSON report is written beside the outputs.

By default Ray runs embedded, sized to this machine and bound to 127.0.0.1;
``--address`` (or ``RAY_ADDRESS``) runs the same job on an existing cluster,
whose nodes must see SRC and DST at the same paths (a shared file system).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import json
import logging
import os
import re
import resource
import shutil
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from .batch import IMAGE_SUFFIXES, BatchJob, _walk, process_one
from .cli_options import cutout_options, infer_format, job_from_options
from .errors import BgclearError, ModelError

log = logging.getLogger("bgclear")

REPORT_NAME = "bgclear-batch-report.json"
LOCK_NAME = ".bgclear-batch.lock"
#: Object store of the embedded Ray: only paths and status rows pass through it.
EMBEDDED_OBJECT_STORE_BYTES = 256 * 1024**2
#: Ray Data keeps a few KB of bookkeeping per file in the driver, so very long lists
#: run as consecutive rounds of this many files; each round starts its workers once.
DEFAULT_ROUND_SIZE = 5000
#: A file whose worker process dies is tried this many more times before it is reported.
CRASH_RETRIES = 2
NO_RESULT = "no result: the worker process died while processing this file (crash or out of memory)"
ROW_FIELDS = ("index", "status", "reason", "seconds", "warnings", "node", "pid", "peak_rss_mb")


# --- inputs -------------------------------------------------------------------

@dataclass(frozen=True)
class WorkItem:
    """One file to cut out: its position in the job, its source and its destination."""

    index: int
    src: str
    dest: str


@dataclass
class Plan:
    """What SRC expands to: the work, and the files refused before any work (with reasons)."""

    kind: str  # folder | glob | list | file
    items: list[WorkItem]
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (source, output, reason)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: outputs keep the layout below it."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _read_list(list_file: Path) -> list[Path]:
    """Paths from a text file: one a line; blank lines and ``#`` comments skipped; relative to the current folder."""
    paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paths.append(Path(line))
    return paths


def plan_inputs(src: str, dst: Path, fmt: str) -> Plan:
    """Expand SRC (a folder, a glob, a text file of paths, or one image) into work for DST.

    Outputs keep the layout below the folder, below the glob's fixed prefix, or
    below the list's common folder, with the ``fmt`` suffix. Two sources that would
    write the same output are refused rather than overwrite each other.
    Raises FileNotFoundError when SRC names nothing.
    """
    dst_abs = dst.resolve()
    source = Path(src)
    if source.is_dir():
        kind = "folder"
        base = source
        exclude = dst_abs if _inside(dst_abs, source.resolve()) else None
        paths = _walk(source, exclude)
    elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        kind, base, paths = "file", source.parent, [source]
    elif source.is_file():
        kind = "list"
        paths = _read_list(source)
        parents = [os.path.abspath(p.parent) for p in paths]
        base = Path(os.path.commonpath(parents)) if parents else Path(".")
        paths = [Path(os.path.abspath(p)) for p in paths]
    elif glob.has_magic(src):
        kind = "glob"
        base = _glob_base(src)
        paths = [
            Path(p) for p in sorted(glob.glob(src, recursive=True))
            if os.path.isfile(p) and not os.path.basename(p).startswith(".")
            and not _inside(Path(p).resolve(), dst_abs)
        ]
        if not paths:
            raise FileNotFoundError(f"no file matches {src}")
    else:
        raise FileNotFoundError(f"{src} is not a folder, a file or a glob that matches anything")

    plan = Plan(kind=kind, items=[])
    claimed: dict[str, str] = {}
    seen: set[str] = set()
    for path in paths:
        key = str(path.resolve()) if path.exists() else str(path)
        if key in seen:  # the same file listed twice is done once
            continue
        seen.add(key)
        # Absolute paths: workers run in other folders, on other machines that mount the same paths.
        dest = os.path.abspath(dst / Path(os.path.relpath(path, base)).with_suffix("." + fmt))
        if kind == "list" and not path.is_file():
            plan.refused.append((str(path), dest, "no such file" if not path.exists() else "not a file"))
        elif dest in claimed:
            plan.refused.append((str(path), dest, f"its output name is already taken by {claimed[dest]}"))
        else:
            claimed[dest] = str(path)
            plan.items.append(WorkItem(len(plan.items), os.path.abspath(path), dest))
    return plan


# --- is an output already done? ---------------------------------------------------

def expected_output_size(src: str | Path) -> tuple[int, int] | None:
    """(width, height) the output of ``src`` has, read from the header (EXIF rotation applied)."""
    from PIL import Image

    try:
        with Image.open(src) as img:
            width, height = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - decode ignores a broken EXIF block too
                orientation = 1
    except Exception:  # noqa: BLE001 - an unreadable source has no valid output
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _expected_modes(job: BatchJob) -> set[str]:
    from .compose import parse_color

    if job.mask:
        return {"L"}
    if job.fmt in ("jpg", "jpeg") or parse_color(job.background) is not None:
        return {"RGB"}
    return {"RGBA"}


def output_is_complete(src: str | Path, dest: str | Path, job: BatchJob) -> bool:
    """True when ``dest`` is a finished output of ``src`` under ``job``.

    Existing is not enough: the file must decode completely, in the mode the
    options give, at the source's size (within it when cropping). A truncated
    file, or one written with other options, is done again.
    """
    from PIL import Image

    try:
        with Image.open(dest) as img:
            size, mode = img.size, img.mode
            img.load()
    except Exception:  # noqa: BLE001 - anything that does not decode is not done
        return False
    if mode not in _expected_modes(job):
        return False
    expected = expected_output_size(src)
    if expected is None:
        return False
    if job.crop:
        return 0 < size[0] <= expected[0] and 0 < size[1] <= expected[1]
    return size == expected


# --- the worker -----------------------------------------------------------------

class BatchError(click.ClickException):
    """The job cannot start or go on (exit status 2; a file that fails is exit status 1)."""

    exit_code = 2


class WorkerInitError(BgclearError):
    """A worker could not start (its model is missing, the device unusable...): the job cannot go on."""


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


class CutoutWorker:
    """One loaded model and what to do with each file: Ray Data's callable class, and the pool's per-process state.

    ``threads`` caps the threads this worker's inference and filters use, so that
    workers sharing a machine share its cores instead of each spawning one thread per core.
    """

    def __init__(self, job: BatchJob, resume: bool = True, threads: int | None = None) -> None:
        from .process import prefer_small_pages

        prefer_small_pages()
        if threads:
            os.environ["BGCLEAR_THREADS"] = str(threads)
            import cv2

            cv2.setNumThreads(threads)
        from .pipeline import get_session

        self.job = job
        self.resume = resume
        self.node = _node_name()
        self.pid = os.getpid()
        try:
            self.session = get_session(job.segmenter, job.refiner, job.device)
        except Exception as exc:  # noqa: BLE001 - surfaced to the driver as one clear error
            raise WorkerInitError(f"a worker on {self.node} could not load the models: {exc}") from exc

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
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ray Data ``map_batches`` entry: a batch of (index, src, dest) in, status rows out."""
        import numpy as np

        rows = [self.process(int(i), str(s), str(d)) for i, s, d in zip(batch["index"], batch["src"], batch["dest"])]
        return {name: np.array([row[name] for row in rows]) for name in ROW_FIELDS}


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
            "node": "", "pid": 0, "peak_rss_mb": 0.0}


# --- Ray ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RayPlan:
    """How the job sits on the cluster."""

    address: str  # "embedded" or what the user gave
    nodes: int
    cluster_cpus: float
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    memory_per_worker: int | None  # bytes Ray reserves per worker, or None
    capacity: int  # workers the live nodes can hold now


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Make Ray pick 127.0.0.1 as this node's address, as it does on macOS and Windows.

    Ray on Linux turns even an explicit 127.0.0.1 into the host's network address and
    then listens on every interface. Its switch for single-machine Ray is read once, at
    import: the environment variable covers the processes Ray starts, and the module
    constant covers this one when Ray was imported before.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


@contextlib.contextmanager
def ray_connection(address: str | None, cpus: int, verbose: bool = False) -> Iterator[str]:
    """Connect to the cluster at ``address``, or start an embedded Ray sized to ``cpus``; yields the address used.

    The embedded instance never reaches the network: usage stats off, no dashboard,
    every process on 127.0.0.1 (what Ray does on macOS and Windows), Ray's own
    token authentication (its default for a new local instance), and a temporary
    folder of its own, removed afterwards, so it never meets another Ray instance
    on the machine.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    # Ray's start-up notices (token auth, usage stats) are not for our users; its errors are.
    log_level = logging.INFO if verbose else logging.ERROR
    if address is None or address == "local":
        temp_dir = tempfile.mkdtemp(prefix="bgray-", dir="/tmp" if os.path.isdir("/tmp") else None)  # short: socket paths
        try:
            with _environment(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"), _loopback_node():
                ray.init(address="local", num_cpus=cpus, object_store_memory=EMBEDDED_OBJECT_STORE_BYTES,
                         include_dashboard=False, log_to_driver=verbose, logging_level=log_level,
                         _temp_dir=temp_dir)
                try:
                    yield "embedded"
                finally:
                    ray.shutdown()
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
    else:
        ray.init(address=address, log_to_driver=verbose, logging_level=log_level)
        try:
            yield address
        finally:
            ray.shutdown()


def plan_on_cluster(address: str, workers: int | None, cpus_per_worker: float | None, gpus_per_worker: float,
                    memory_per_worker: int | None) -> RayPlan:
    """Size the actor pool from the live nodes: by default every CPU busy, ``cpus_per_worker`` each.

    The default is 2 CPUs per worker (one cutout uses two threads well), or 1 when
    some node has a single CPU, so that every node can host workers.
    """
    import ray

    node_cpus = [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    usable = [c for c in node_cpus if c > 0]
    if not usable:
        raise BatchError("the Ray cluster has no node with CPUs")
    if cpus_per_worker is None:
        cpus_per_worker = 2.0 if min(usable) >= 2 else 1.0
    fits = sum(int(c // cpus_per_worker) for c in usable)
    if workers is None:
        workers = max(1, fits)
    return RayPlan(address=address, nodes=len(usable), cluster_cpus=sum(usable), workers=workers,
                   cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                   memory_per_worker=memory_per_worker, capacity=fits)


def _configure_ray_data() -> None:
    """Ray Data settings for a job of many small rows (set in the process that runs the pipeline)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours counts files, theirs counts blocks
    ctx.print_on_execution_start = False
    # Status rows are tiny: without this they would be held back until a whole block is done.
    ctx.target_max_block_size = 1
    # A block whose worker died CRASH_RETRIES + 1 times is one file: report it, carry on.
    ctx.max_errored_blocks = -1
    # One file running and one queued per worker: keeps workers fed without leaving
    # long queues on one worker while another idles at the end.
    ctx.max_tasks_in_flight_per_actor = 2
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _ray_rows(items: list[dict[str, Any]], job: BatchJob, plan: RayPlan, resume: bool) -> Iterator[dict[str, Any]]:
    """Run one round on the connected cluster; yields status rows as workers finish files."""
    import ray.data

    _configure_ray_data()
    if plan.workers <= plan.capacity:
        compute = ray.data.ActorPoolStrategy(size=plan.workers)
    else:  # more workers asked for than the nodes hold now: start what fits, grow as nodes join
        compute = ray.data.ActorPoolStrategy(min_size=max(1, plan.capacity), max_size=plan.workers)
    extra: dict[str, Any] = {}
    if plan.memory_per_worker:
        extra["memory"] = plan.memory_per_worker
    if plan.gpus_per_worker:
        extra["num_gpus"] = plan.gpus_per_worker
    threads = max(1, int(plan.cpus_per_worker))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing max_task_retries this way but names no replacement;
        # without it a file that crashes its worker would be retried forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            CutoutWorker,
            fn_constructor_kwargs={"job": job, "resume": resume, "threads": threads},
            batch_size=1, batch_format="numpy", compute=compute, num_cpus=plan.cpus_per_worker,
            max_restarts=-1, max_task_retries=CRASH_RETRIES, **extra,
        )
    for row in dataset.iter_rows():
        yield {name: (row[name].item() if hasattr(row[name], "item") else row[name]) for name in ROW_FIELDS}


def _rounds(items: list[WorkItem], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield [asdict(item) for item in items[start:start + size]]


def _coordinate(rounds: list[list[dict[str, Any]]], job: BatchJob, plan: RayPlan, resume: bool, queue) -> None:
    """Runs on the cluster for a Ray Client (``ray://``) driver, where Ray Data cannot run: streams rows back."""
    buffered: list[dict[str, Any]] = []
    last = time.monotonic()
    for items in rounds:
        for row in _ray_rows(items, job, plan, resume):
            buffered.append(row)
            if len(buffered) >= 64 or time.monotonic() - last > 0.5:
                queue.put(buffered)
                buffered, last = [], time.monotonic()
    if buffered:
        queue.put(buffered)
    queue.put(None)


def run_on_ray(items: list[WorkItem], job: BatchJob, plan: RayPlan, sink: Callable[[dict[str, Any]], None], *,
               resume: bool, round_size: int = DEFAULT_ROUND_SIZE) -> None:
    """Process ``items`` on the connected Ray cluster, feeding status rows to ``sink`` as they come."""
    import ray

    if not plan.address.startswith("ray://"):
        for items_round in _rounds(items, round_size):
            for row in _ray_rows(items_round, job, plan, resume):
                sink(row)
        return
    # Ray Client: Ray Data's executor needs a real driver, so it runs in a task on the
    # cluster (no CPU reserved) and sends rows back through a small queue actor.
    from queue import Empty

    from ray.util.queue import Queue

    queue = Queue(maxsize=256, actor_options={"num_cpus": 0})
    task = ray.remote(num_cpus=0, max_retries=0)(_coordinate).remote(
        list(_rounds(items, round_size)), job, plan, resume, queue)
    try:
        while True:
            try:
                rows = queue.get(block=True, timeout=1.0)
            except Empty:
                done, _ = ray.wait([task], timeout=0)
                if done:
                    ray.get(task)  # raises the coordinator's error, if any
                    if queue.empty():
                        return
                continue
            if rows is None:
                ray.get(task)
                return
            for row in rows:
                sink(row)
    finally:
        with contextlib.suppress(Exception):
            ray.cancel(task, force=True)
        with contextlib.suppress(Exception):
            queue.shutdown()


# --- the destination: one job at a time, no leftovers --------------------------------------

_PART = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part$")  # what pipeline.write_atomic names its temporary files


class DestinationBusy(BatchError):
    """Another batch is writing into the same destination."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    # A recycled pid that is not a bgclear process does not hold the lock.
    return not cmdline.exists() or b"bgclear" in cmdline.read_bytes()


@contextlib.contextmanager
def destination_lock(dst: Path) -> Iterator[None]:
    """Hold ``DST/.bgclear-batch.lock`` for the job; a lock left by a dead process on this host is taken over."""
    dst.mkdir(parents=True, exist_ok=True)
    lock = dst / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", 0))):
                lock.unlink(missing_ok=True)
                continue
            raise DestinationBusy(
                f"another bgclear batch (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                f"{holder.get('started', '?')}) is writing into {dst}; if it is no longer running, delete {lock}")
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def remove_stale_parts(dst: Path) -> int:
    """Delete temporary files that a killed job left in ``dst`` (only while holding its lock)."""
    removed = 0
    for folder, _dirs, names in os.walk(dst):
        for name in names:
            if _PART.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


# --- progress and report --------------------------------------------------------------------

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Tally:
    """Counts, failures and per-worker figures, folded in one status row at a time (no row is kept)."""

    items: list[WorkItem]
    done: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    workers: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    busy_seconds: float = 0.0
    seen: bytearray = field(default_factory=bytearray)
    started: float = field(default_factory=time.monotonic)
    first_result: float | None = None

    MAX_WARNINGS = 1000

    def __post_init__(self) -> None:
        self.seen = bytearray(len(self.items))

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def add(self, row: dict[str, Any]) -> None:
        index = int(row["index"])
        if self.seen[index]:  # a retried file can report twice; the first answer stands
            return
        self.seen[index] = 1
        item = self.items[index]
        status = row["status"]
        if status == "done":
            self.done += 1
            self.busy_seconds += float(row["seconds"])
            if self.first_result is None:
                self.first_result = time.monotonic()
        elif status == "skipped":
            self.skipped += 1
        else:
            self.failures.append({"source": item.src, "output": item.dest, "reason": str(row["reason"])})
        for warning in filter(None, str(row.get("warnings", "")).split("\n")):
            key = f"{Path(item.src).name}: {warning}"
            if key in self.warnings or len(self.warnings) < self.MAX_WARNINGS:
                self.warnings[key] = self.warnings.get(key, 0) + 1
        if row.get("pid"):
            stats = self.workers.setdefault((str(row["node"]), int(row["pid"])), {"images": 0, "peak_rss_mb": 0.0})
            stats["images"] += status != "skipped"
            stats["peak_rss_mb"] = max(stats["peak_rss_mb"], float(row["peak_rss_mb"]))

    def add_missing(self) -> None:
        """Files no row came back for (their block failed for good) are failures too."""
        for item in self.items:
            if not self.seen[item.index]:
                self.add(_failed_row(item, NO_RESULT))

    def rate_per_minute(self) -> float:
        """Processed files per minute since the first one finished (start-up excluded, skips excluded)."""
        processed = self.done + self.failed
        if self.first_result is None or processed < 2:
            return 0.0
        return (processed - 1) * 60.0 / max(time.monotonic() - self.first_result, 1e-6)


class Progress:
    """A bar with files per minute and an ETA from processed files only (skips are nearly free).

    Without a terminal it prints one line every ``interval`` seconds instead.
    """

    def __init__(self, tally: Tally, enabled: bool, interval: float = 30.0) -> None:
        from tqdm import tqdm

        self.tally = tally
        self.tty = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.tty
        self.interval = interval
        self.last_line = time.monotonic()
        self.bar = tqdm(total=len(tally.items), unit="img", disable=not self.tty, dynamic_ncols=True,
                        file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

    def _status(self) -> str:
        t = self.tally
        rate = t.rate_per_minute()
        remaining = len(t.items) - t.finished
        eta = _clock(remaining / rate * 60) if rate > 0 else "?"
        return f"{rate:.1f} img/min, ETA {eta}, {t.done} done, {t.skipped} skipped, {t.failed} failed"

    def update(self) -> None:
        if self.tty:
            self.bar.n = self.tally.finished
            self.bar.set_postfix_str(self._status(), refresh=True)
        elif self.lines and time.monotonic() - self.last_line >= self.interval:
            self.last_line = time.monotonic()
            click.echo(f"{self.tally.finished}/{len(self.tally.items)}: {self._status()}", err=True)

    def close(self) -> None:
        self.bar.close()


def build_report(tally: Tally, plan: Plan, dst: Path, job: BatchJob, run: dict[str, Any], started: str,
                 seconds: float) -> dict[str, Any]:
    """The JSON report: counts, failures with reasons, images per minute, and each worker's peak memory."""
    from . import __version__

    nodes: dict[str, dict[str, Any]] = {}
    for (node, _pid), stats in tally.workers.items():
        entry = nodes.setdefault(node, {"node": node, "workers": 0, "images": 0, "workers_peak_rss_mb": 0.0})
        entry["workers"] += 1
        entry["images"] += stats["images"]
        entry["workers_peak_rss_mb"] = round(entry["workers_peak_rss_mb"] + stats["peak_rss_mb"], 1)
    refused = [{"source": s, "output": d, "reason": r} for s, d, r in plan.refused]
    options = asdict(job)
    return {
        "bgclear": __version__,
        "source": run["source"],
        "destination": os.path.abspath(dst),
        "started": started,
        "finished": _now(),
        "seconds": round(seconds, 2),
        **{k: v for k, v in run.items() if k != "source"},
        "options": options,
        "counts": {"total": len(tally.items) + len(refused), "done": tally.done, "skipped": tally.skipped,
                   "failed": tally.failed + len(refused)},
        "images_per_minute": round(tally.done * 60.0 / seconds, 2) if seconds > 0 else 0.0,
        "steady_images_per_minute": round(tally.rate_per_minute(), 2),
        "seconds_per_image_per_worker": round(tally.busy_seconds / tally.done, 3) if tally.done else None,
        "failures": refused + tally.failures,
        "warnings": [f"{k} (x{n})" if n > 1 else k for k, n in sorted(tally.warnings.items())],
        "workers_detail": [{"node": node, "pid": pid, **stats} for (node, pid), stats in sorted(tally.workers.items())],
        "nodes_detail": sorted(nodes.values(), key=lambda n: n["node"]),
    }


# --- the job ---------------------------------------------------------------------------

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_local_workers(cpus: int) -> int:
    """Workers on one machine: one per two cores (a cutout uses two threads well; memory is per worker)."""
    return max(1, cpus // 2)


def _check_model_here(job: BatchJob) -> None:
    """Fail in a second, not after starting workers, when a local run's model is not installed."""
    from .models.registry import get_model
    from .models.store import model_path

    spec = get_model(job.segmenter)
    if spec.kind == "segmenter" and (spec.source is not None or "path" in spec.extra):
        model_path(spec, verify=False)


def _ray_available() -> str | None:
    """None when Ray Data imports, else why not."""
    try:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        return f"{exc.name or 'ray'} is not installed"
    return None


def run_batch_job(src: str, dst: Path, job: BatchJob, *, backend: str = "auto", address: str | None = None,
                  workers: int | None = None, cpus_per_worker: float | None = None, gpus_per_worker: float = 0.0,
                  memory_per_worker: int | None = None, resume: bool = True, report_path: Path | None = None,
                  progress: bool = True, round_size: int = DEFAULT_ROUND_SIZE, verbose: bool = False,
                  echo: Callable[[str], None] = lambda m: click.echo(m, err=True)) -> dict[str, Any]:
    """Cut out everything SRC names into DST; returns the report (also written as JSON).

    ``backend``: ``ray``, ``local`` (process pool) or ``auto`` (Ray when installed).
    Raises click.ClickException for problems that stop the job before it starts.
    """
    plan = plan_inputs(src, dst, job.fmt)
    if address == "local":
        address = None
    if backend == "auto":
        why_not = _ray_available()
        backend = "ray" if why_not is None else "local"
        if why_not:
            if address:
                raise BatchError(f"--address needs Ray ({why_not}): pip install 'bgclear[ray]'")
            echo(f"Ray is not available ({why_not}; pip install 'bgclear[ray]'): "
                 "running on a local process pool instead, with the same behaviour.")
    elif backend == "ray" and (why_not := _ray_available()):
        raise BatchError(f"the ray backend needs Ray ({why_not}): pip install 'bgclear[ray]'")
    if backend == "local" and address:
        raise BatchError("--address runs on a Ray cluster; it cannot be used with --backend local")
    if backend == "local" or address is None:
        try:
            _check_model_here(job)
        except ModelError as exc:
            raise BatchError(str(exc)) from None

    tally = Tally(plan.items)
    started, t0 = _now(), time.monotonic()
    run: dict[str, Any] = {"source": src}
    cpus = _cpu_count()
    with destination_lock(dst):
        stale = remove_stale_parts(dst)
        if stale:
            echo(f"removed {stale} temporary file(s) left by an interrupted job")
        bar: Progress | None = None

        def sink(row: dict[str, Any]) -> None:
            tally.add(row)
            if bar is not None:
                bar.update()

        try:
            if backend == "local":
                n = workers or default_local_workers(cpus)
                threads = max(1, cpus // n)
                run.update(backend="process-pool", address=None, nodes=1, workers=n, cpus_per_worker=cpus / n)
                echo(f"{len(plan.items)} image(s) from {src} into {dst}: {n} worker process(es) x {threads} thread(s)")
                bar = Progress(tally, progress)
                run_on_pool(plan.items, job, sink, workers=n, threads=threads, resume=resume)
            else:
                if address is None:
                    workers = workers or default_local_workers(cpus)
                    cpus_per_worker = cpus_per_worker or cpus / workers
                echo("starting Ray ..." if address is None else f"connecting to Ray at {address} ...")
                with ray_connection(address, cpus, verbose) as used:
                    ray_plan = plan_on_cluster(used, workers, cpus_per_worker, gpus_per_worker, memory_per_worker)
                    run.update(backend="ray", address=used, nodes=ray_plan.nodes, workers=ray_plan.workers,
                               cpus_per_worker=ray_plan.cpus_per_worker, cluster_cpus=ray_plan.cluster_cpus)
                    echo(f"{len(plan.items)} image(s) from {src} into {dst}: Ray ({used}, {ray_plan.nodes} node(s), "
                         f"{ray_plan.cluster_cpus:g} CPUs), {ray_plan.workers} worker(s) x "
                         f"{ray_plan.cpus_per_worker:g} CPU")
                    bar = Progress(tally, progress)
                    if plan.items:
                        run_on_ray(plan.items, job, ray_plan, sink, resume=resume, round_size=round_size)
        except WorkerInitError as exc:
            raise BatchError(str(exc)) from None
        except (KeyboardInterrupt, BatchError):
            raise
        except Exception as exc:  # noqa: BLE001 - the report still says what finished
            message = _root_message(exc)
            if "could not load the models" in message:
                raise BatchError(message) from None
            echo(f"error: the job stopped: {message}")
            run["error"] = message
        finally:
            if bar is not None:
                bar.close()
        if "error" not in run:
            tally.add_missing()
        report = build_report(tally, plan, dst, job, run, started, time.monotonic() - t0)
        _write_report(report, report_path or dst / REPORT_NAME)
    return report


def _root_message(exc: BaseException) -> str:
    """The first line of the innermost cause: Ray wraps a worker's error in several layers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    for marker in ("WorkerInitError: ", "ModelNotFoundError: ", "ModelError: "):
        if marker in text:
            return text.split(marker, 1)[1].splitlines()[0]
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:500]


def _write_report(report: dict[str, Any], path: Path) -> None:
    from .pipeline import write_atomic

    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


def _summary(report: dict[str, Any], report_path: Path, limit: int = 20) -> str:
    c = report["counts"]
    lines = [f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed of {c['total']} in "
             f"{report['seconds']:.1f}s ({report['images_per_minute']:.1f} images/min); report: {report_path}"]
    for failure in report["failures"][:limit]:
        lines.append(f"  FAILED {failure['source']}: {failure['reason']}")
    if len(report["failures"]) > limit:
        lines.append(f"  ... and {len(report['failures']) - limit} more in the report")
    return "\n".join(lines)


# --- the command ---------------------------------------------------------------------------

@click.command("batch")
@click.argument("src")
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@cutout_options
@click.option("-j", "--workers", type=click.IntRange(min=1), default=None,
              help="Workers, each with its own model [this machine: one per 2 cores; a cluster: its CPUs / --cpus-per-worker].")
@click.option("--address", envvar="RAY_ADDRESS", default=None, metavar="ADDRESS",
              help="Run on this Ray cluster: ray://HEAD:10001 (Ray Client) or HEAD:6379 from a cluster node "
                   "[default: $RAY_ADDRESS, else an embedded Ray on this machine].")
@click.option("--backend", type=click.Choice(["auto", "ray", "local"]), default="auto", show_default=True,
              help="ray, local (a process pool, no Ray), or auto: Ray when installed.")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0.01), default=None,
              help="CPUs Ray reserves per worker (also its thread count) [2, or 1 on 1-CPU nodes; this machine: cores / workers].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, help="GPUs Ray reserves per worker (with --device cuda).")
@click.option("--memory-per-worker", type=click.FloatRange(min=0.1), default=None, metavar="GB",
              help="Memory Ray reserves per worker, so that it never packs more workers on a node than fit.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip files whose output is already complete and valid, or process everything again.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Where to write the JSON report [DST/{REPORT_NAME}].")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar (a line every 30 s when not on a terminal).")
@click.option("--round-size", type=click.IntRange(min=1), default=DEFAULT_ROUND_SIZE, show_default=True, hidden=True)
@click.pass_context
def batch_command(ctx: click.Context, src: str, dst: Path, workers: int | None, address: str | None, backend: str,
                  cpus_per_worker: float | None, gpus_per_worker: float, memory_per_worker: float | None, resume: bool,
                  report_path: Path | None, progress: bool, round_size: int, **options: Any) -> None:
    """Cut out every image SRC names into the folder DST, on Ray.

    SRC is a folder (every image below it), a glob ('shoot/**/*.jpg', quoted) or a
    text file of paths (one a line, relative to the current folder). Outputs keep
    the layout below SRC, with the same options as 'bgclear remove'.

    Outputs already complete and valid are skipped, so an interrupted job resumes.
    A file that fails is reported and the rest go on; DST/bgclear-batch-report.json
    lists counts, failures with reasons and images per minute. Exit status 1 if
    any file failed.
    """
    fmt = infer_format(options["fmt"], options["mask"])
    job = job_from_options(options, fmt)
    verbose = bool(ctx.find_root().params.get("verbose"))
    try:
        report = run_batch_job(
            src, dst, job, backend=backend, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            memory_per_worker=int(memory_per_worker * 1024**3) if memory_per_worker else None,
            resume=resume, report_path=report_path, progress=progress, round_size=round_size, verbose=verbose)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="'SRC'") from None
    click.echo(_summary(report, report_path or dst / REPORT_NAME), err=True)
    if report.get("error"):
        sys.exit(2)
    if report["counts"]["failed"]:
        sys.exit(1)


if __name__ == "__main__":  # python -m bgclear.distributed SRC DST [options]
    batch_command()
