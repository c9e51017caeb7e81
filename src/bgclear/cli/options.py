"""The cutout options shared by ``bgclear remove`` and ``bgclear batch``.

One decorator declares them and one function turns them into a
:class:`~bgclear.batch.BatchJob`, so the two commands cannot drift apart: an
option added here is accepted by both and means the same thing in both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..backends import DEFAULT_REFINER, refiner_names
from ..batch import BatchJob
from ..stages.compose import Shadow, parse_color
from ..engines.base import ENGINE_CHOICES, PRECISION_CHOICES
from ..engines.device import DEVICE_HELP
from ..errors import InputError
from ..models.registry import DEFAULT_SEGMENTER
from ..points import BOX_HELP, POINT_HELP, numbers
from ..stages.touchup import check_prompts

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword names these options give the command function, in declaration order.
CUTOUT_OPTION_NAMES = (
    "fmt", "background", "shadow", "shadow_opacity", "shadow_offset", "shadow_blur", "crop", "crop_margin",
    "mask", "segmenter", "refiner", "device", "engine", "precision", "second_opinion", "quality",
)

_OPTIONS = (
    click.option("-f", "--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default=None,
                 help="Output format [png; jpg when a background colour is set and the output name says so]."),
    click.option("-b", "--background", "--bg", default="transparent", show_default=True,
                 help="transparent, white, black or #rrggbb."),
    click.option("--shadow/--no-shadow", default=False, help="Soft drop shadow under the subject."),
    click.option("--shadow-opacity", type=float, default=0.15, show_default=True),
    click.option("--shadow-offset", type=(float, float), default=(0.01, 0.015), show_default=True,
                 help="x y offset as fractions of the long edge."),
    click.option("--shadow-blur", type=float, default=0.015, show_default=True,
                 help="Blur as a fraction of the long edge."),
    click.option("--crop/--no-crop", default=False, help="Trim to the subject."),
    click.option("--crop-margin", default="2%", show_default=True, help="Margin around the crop: px or N%."),
    click.option("--mask", is_flag=True, help="Write the alpha matte alone (greyscale PNG)."),
    click.option("--segmenter", default=DEFAULT_SEGMENTER, show_default=True,
                 help="Segmentation model (bgclear models list)."),
    click.option("--refiner", default=DEFAULT_REFINER, show_default=True,
                 help=f"Edge refinement: {', '.join(refiner_names())}."),
    click.option("--device", default="auto", show_default=True, help=DEVICE_HELP),
    click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
                 help="Inference runtime; auto: OpenVINO where the CPU computes bf16 natively, else onnxruntime."),
    click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
                 help="auto: bf16 where the CPU computes it natively (OpenVINO), else f32. int8: the int8 ISNet "
                      "made at pull time (OpenVINO), where the network is sure of the photo."),
    click.option("--second-opinion/--no-second-opinion", default=False, show_default=True,
                 help="Let MobileSAM check the automatic cutout (SAD better on every dev set, Grad worse on the "
                      "alphamatting photos; one more encoder pass per photo)."),
    click.option("--quality", type=int, default=92, show_default=True, help="JPG/WebP quality."),
)


def cutout_options(fn: F) -> F:
    """Add every cutout option (format, background, shadow, crop, mask, models, quality) to a click command."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def infer_format(fmt: str | None, mask: bool, output: Path | None = None, single_file: bool = False) -> str:
    """The output format: ``-f`` when given; a mask is PNG; one file's ``-o`` suffix; else PNG."""
    if fmt is not None:
        return fmt
    if mask:
        return "png"
    if output is not None and single_file and output.suffix.lower() in (".jpg", ".jpeg", ".webp", ".png"):
        return "jpg" if output.suffix.lower() in (".jpg", ".jpeg") else output.suffix.lower().lstrip(".")
    return "png"


def job_from_options(options: dict[str, Any], fmt: str) -> BatchJob:
    """A :class:`BatchJob` from the keyword arguments :func:`cutout_options` declared.

    ``options`` may hold other keys (the command's own); they are ignored. Raises
    :class:`click.BadParameter` for a colour that does not parse, before any work starts.
    """
    try:
        parse_color(options["background"])
    except InputError as exc:
        raise click.BadParameter(exc.message, param_hint="'--background'") from None
    shadow = None
    if options["shadow"]:
        offset_x, offset_y = options["shadow_offset"]
        shadow = Shadow(options["shadow_opacity"], offset_x, offset_y, options["shadow_blur"])
    return BatchJob(
        segmenter=options["segmenter"], refiner=options["refiner"], device=options["device"],
        engine=options["engine"], precision=options["precision"], second_opinion=options["second_opinion"],
        background=options["background"], shadow=shadow, crop=options["crop"], crop_margin=options["crop_margin"],
        mask=options["mask"], fmt=fmt, quality=options["quality"],
    )


class _Numbers(click.ParamType):
    """``count`` comma-separated finite numbers (a point or a box); anything else is a usage error."""

    def __init__(self, count: int, example: str) -> None:
        self.count, self.example = count, example
        self.name = "X,Y" if count == 2 else "L,T,R,B"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return numbers(str(value), self.count)
        except InputError as exc:
            self.fail(f"{exc.message}; expected {self.example}", param, ctx)


_TOUCHUP_OPTIONS = (
    click.option("--keep", "keep", multiple=True, type=_Numbers(2, POINT_HELP),
                 help=f"A point on what must stay ({POINT_HELP}, after EXIF orientation). Repeatable."),
    click.option("--drop", "drop", multiple=True, type=_Numbers(2, POINT_HELP),
                 help="A point on what must go (x,y). Repeatable."),
    click.option("--box", "box", type=_Numbers(4, BOX_HELP), default=None,
                 help=f"A box around the subject ({BOX_HELP}); clears everything outside it."),
)


def touchup_options(fn: F) -> F:
    """Add --keep / --drop / --box (one photo's touch-up; not for batches) to a click command."""
    for option in reversed(_TOUCHUP_OPTIONS):
        fn = option(fn)
    return fn


def prompts_from_options(options: dict[str, Any]) -> dict[str, Any] | None:
    """The keyword arguments :meth:`Session.remove` takes for the points and box, or None when none
    were given. Raises :class:`click.UsageError` for too many points or a box with no area."""
    keep, drop, box = tuple(options.get("keep") or ()), tuple(options.get("drop") or ()), options.get("box")
    if not (keep or drop or box is not None):
        return None
    try:
        check_prompts(keep, drop, box)
    except InputError as exc:
        raise click.UsageError(exc.message) from None
    return {"keep": keep, "drop": drop, "box": box}
