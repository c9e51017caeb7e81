"""Running the workers on Ray Data: embedded on this machine or on an existing cluster."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ..batch import BatchJob
from .common import (
    CRASH_RETRIES,
    DEFAULT_ROUND_SIZE,
    EMBEDDED_OBJECT_STORE_BYTES,
    ROW_FIELDS,
    BatchError,
)
from .inputs import WorkItem
from .worker import CutoutWorker, check_can_start

log = logging.getLogger("bgclear")



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


def check_address(address: str) -> None:
    """Refuse the job server's URL before connecting: a driver attaches to the GCS (or ray://), not to HTTP."""
    if address.startswith(("http://", "https://")):
        raise BatchError(
            f"{address} (--address or $RAY_ADDRESS) is Ray's job server, where jobs are submitted: run "
            f"'ray job submit --address {address} --working-dir . -- bgclear batch SRC DST ...' "
            "(SRC and DST on storage every node mounts), or give the head's GCS address (HEAD:6379) "
            "from a cluster node")


def submitted_job() -> str | None:
    """The submission id when this process is the entrypoint of a ``ray job submit`` job, else None.

    Ray's job supervisor hands the entrypoint the job's config (and RAY_ADDRESS, the
    cluster's GCS address) in its environment.
    """
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return None
    try:
        return json.loads(raw).get("metadata", {}).get("job_submission_id") or None
    except (ValueError, AttributeError):
        return None


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


def _node_problem(job: BatchJob) -> str | None:
    """Runs on one node: why a worker could not start there, or None."""
    from ..errors import ModelError

    try:
        check_can_start(job)
    except ModelError as exc:
        return str(exc)
    return None


def check_nodes(job: BatchJob, timeout: float = 120.0) -> None:
    """Before any worker starts, ask every live node with CPUs whether it holds the model and the engine.

    One task per node, no CPU reserved, in the job's runtime environment: a cluster
    that cannot run the job stops it in seconds with one message naming the nodes,
    not through Ray's actor-death tracebacks. Nodes that do not answer within
    ``timeout`` (busy, joining) are left to the workers themselves.
    """
    import ray
    from ray.exceptions import RayTaskError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_node_problem)
    refs = {
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(job):
            node["NodeManagerAddress"]
        for node in ray.nodes() if node.get("Alive") and node["Resources"].get("CPU", 0) > 0
    }
    ready, _late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    problems: dict[str, list[str]] = {}
    for ref in ready:
        try:
            problem = ray.get(ref)
        except RayTaskError as exc:  # bgclear itself does not import there, say
            cause = getattr(exc, "cause", None) or exc
            lines = str(cause).strip().splitlines() or [""]
            problem = f"bgclear cannot run there: {cause.__class__.__name__}: {lines[0]}"
        except Exception:  # noqa: BLE001 - a node that died meanwhile: Ray Data schedules around it
            continue
        if problem:
            problems.setdefault(problem, []).append(refs[ref])
    if problems:
        raise BatchError("the cluster cannot run this job:" + "".join(
            f"\n  on {len(nodes)} of {len(refs)} node(s) ({', '.join(sorted(nodes))}): {problem}"
            for problem, nodes in problems.items()))


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


