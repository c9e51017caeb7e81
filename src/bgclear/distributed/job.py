"""One batch job from start to end, and the ``bgclear batch`` command."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ..batch import BatchJob
from ..cli.options import cutout_options, infer_format, job_from_options
from ..errors import ModelError
from .common import DEFAULT_ROUND_SIZE, REPORT_NAME, BatchError, timestamp
from .destination import destination_lock, remove_stale_parts
from .inputs import plan_inputs
from .on_ray import check_address, check_nodes, plan_on_cluster, ray_connection, run_on_ray, submitted_job
from .report import Progress, Tally, build_report
from .worker import WorkerInitError, check_can_start, run_on_pool

log = logging.getLogger("bgclear")



def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_local_workers(cpus: int) -> int:
    """Workers on one machine: one per two cores (a cutout uses two threads well; memory is per worker)."""
    return max(1, cpus // 2)


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
    if address:
        check_address(address)
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
            check_can_start(job)
        except ModelError as exc:
            raise BatchError(str(exc)) from None

    tally = Tally(plan.items)
    started, t0 = timestamp(), time.monotonic()
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
                if (ray_job := submitted_job()) is not None:
                    run["ray_job"] = ray_job
                echo("starting Ray ..." if address is None else
                     f"connecting to Ray at {address}{f' (in Ray job {ray_job})' if ray_job else ''} ...")
                with ray_connection(address, cpus, verbose) as used:
                    ray_plan = plan_on_cluster(used, workers, cpus_per_worker, gpus_per_worker, memory_per_worker)
                    if address is not None:  # the embedded Ray is this machine, checked above
                        check_nodes(job)
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
    """The first line of the innermost cause: Ray wraps a worker's error in several layers.

    A worker's own error (its model, its engine) wins wherever it sits in the chain;
    causes without text (Ray Data's bare ``SystemException``) are passed over.
    """
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        for marker in ("WorkerInitError: ", "ModelNotFoundError: ", "ModelError: "):
            if marker in str(link):
                return str(link).split(marker, 1)[1].splitlines()[0]
    texts = [str(link).strip() for link in chain if str(link).strip()]
    if not texts:
        return chain[-1].__class__.__name__
    lines = [line.strip() for line in texts[-1].splitlines() if line.strip()]
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:  # "...failure from server:" then the server's traceback
        first = f"{first} {lines[-1]}"
    return first[:500]


def _write_report(report: dict[str, Any], path: Path) -> None:
    from ..io.files import write_atomic

    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


def _summary(report: dict[str, Any], report_path: Path, limit: int = 20) -> str:
    c = report["counts"]
    lines = [f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed of {c['total']} in "
             f"{report['seconds']:.1f}s ({report['images_per_minute']:.1f} images/min); report: {report_path}"]
    for e in report["engines"]:
        lines.append(f"  {e['workers']} worker(s) on {e['engine']} {e['precision']}, {e['threads'] or 'default'} thread(s) each")
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
              help="Run on this Ray cluster: HEAD:6379 (its GCS) from a cluster node, or ray://HEAD:10001 (Ray Client). "
                   "Inside 'ray job submit' Ray sets RAY_ADDRESS [default: $RAY_ADDRESS, else an embedded Ray on this machine].")
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
    if backend == "local" and ctx.get_parameter_source("address") == ParameterSource.ENVIRONMENT:
        address = None  # a RAY_ADDRESS in the environment (a Ray job's, a shell's) is not a request for Ray
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
