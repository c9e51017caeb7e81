"""``bgclear eval``: quality on images with ground truth, and the click protocol."""

from __future__ import annotations

from pathlib import Path

import click

from ..backends import DEFAULT_REFINER
from ..engines.base import ENGINE_CHOICES, PRECISION_CHOICES
from ..errors import BgclearError
from ..models.registry import DEFAULT_SEGMENTER
from .common import fail as _fail


@click.command("eval")
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
@click.option("--second-opinion", is_flag=True, help="Score the opt-in second opinion (MobileSAM checks the automatic "
              "cutout; with --clicks, the clicks start from it).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write rows and summary as JSON.")
def eval_command(root, segmenter, refiners, given_trimap, limit, no_settle, engine, precision, clicks, starts,
                 second_opinion, json_path) -> None:
    """Score the pipeline on images with ground-truth alpha (SAD, MSE, Grad, Conn, IoU), or with
    --clicks N the keep / remove touch-up (NoC@85/90, IoU after 1/3/5 clicks).

    ROOT defaults to $BGCLEAR_EVAL_DIR or ../shared/eval.
    """
    from ..evaluation.run import default_eval_dir, evaluate, format_table

    root = root or default_eval_dir()
    if not Path(root).is_dir():
        _fail(f"no evaluation data at {root}; pass a folder or set BGCLEAR_EVAL_DIR")
    if clicks:
        _eval_clicks(Path(root), segmenter, engine, precision, clicks, tuple(starts) or ("auto", "empty"), limit,
                     not no_settle, second_opinion, json_path)
        return
    refiners = tuple(refiners) or ("none", DEFAULT_REFINER)
    _report(lambda: evaluate(Path(root), segmenter=segmenter, refiners=refiners, given_trimap=given_trimap, limit=limit,
                             settle=not no_settle, engine=engine, precision=precision, second_opinion=second_opinion,
                             progress=lambda s: click.echo(f"  {s.dataset}/{s.name}", err=True)),
            format_table, json_path)


def _report(run, table, json_path) -> None:
    """Run an evaluation, print its summary as ``table`` makes it, and write it all as JSON when asked."""
    from ..evaluation.run import write_json

    try:
        result = run()
    except BgclearError as exc:
        _fail(str(exc))
    click.echo(table(result["summary"]))
    if json_path:
        write_json(result, json_path)


def _eval_clicks(root, segmenter, engine, precision, clicks, starts, limit, settle, second_opinion, json_path) -> None:
    from ..evaluation.interactive import evaluate_clicks, format_clicks_table
    from ..pipeline import Session

    def run():
        session = Session(segmenter=segmenter, engine=engine, precision=precision, settle=settle,
                          second_opinion=second_opinion)
        return evaluate_clicks(root, session, max_clicks=clicks, starts=starts, limit=limit,
                               progress=lambda line: click.echo(f"  {line}", err=True))

    _report(run, format_clicks_table, json_path)
