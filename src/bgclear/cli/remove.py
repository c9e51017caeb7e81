"""``bgclear remove``: files or folders in, cutouts out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ModelError
from .common import fail as _fail
from .options import cutout_options, infer_format, job_from_options, prompts_from_options, touchup_options


@click.command("remove")
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
    from ..batch import collect_inputs, run_batch

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
