"""Keep / remove points and boxes written as text: the CLI's options and the HTTP API's fields.

A point is ``x,y`` and a box ``left,top,right,bottom``, in source pixels after EXIF
orientation (x right, y down). The HTTP API also takes JSON: ``[[x, y], ...]`` for
points and ``[left, top, right, bottom]`` for a box. Only the text is checked here
(numbers, finite, counts, a box with area); positions against the image are checked
by the engine once the image is decoded (:func:`bgclear.stages.touchup.check_prompts`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

from .errors import InputError
from .promptable import MAX_POINTS
from .stages.touchup import Box, Point

#: A plain decimal number: no 'nan', 'inf', hex or digit separators, which float() would take.
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*\Z")
POINT_HELP = "x,y in source pixels, e.g. 812,400"
BOX_HELP = "left,top,right,bottom in source pixels, e.g. 10,10,900,1300"


def _invalid(message: str) -> InputError:
    return InputError("invalid_option", message)


def numbers(text: str, count: int) -> tuple[float, ...]:
    """``count`` comma-separated finite numbers from ``text``; raises :class:`InputError` saying why not."""
    parts = text.split(",")
    if len(parts) != count:
        raise _invalid(f"{text.strip()[:40]!r} has {len(parts)} comma-separated value{'s' * (len(parts) != 1)}, "
                       f"not {count}")
    for part in parts:
        if not _NUMBER.match(part):
            raise _invalid(f"{part.strip()[:20]!r} is not a number")
    values = tuple(float(p) for p in parts)
    if not all(math.isfinite(v) for v in values):
        raise _invalid(f"{text.strip()[:40]!r} holds a number too large to be a pixel position")
    return values


def _reject_constant(name: str) -> float:
    raise _invalid(f"{name} is not a number")


def _json_numbers(value: object, count: int) -> tuple[float, ...] | None:
    """``value`` as ``count`` finite numbers, or None when it is not a list of that many numbers."""
    if not isinstance(value, list) or len(value) != count:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    values = tuple(float(v) for v in value)
    return values if all(math.isfinite(v) for v in values) else None


def _json(text: str) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{text[:40]!r} is not valid JSON ({exc.msg})") from None


def parse_points(values: Iterable[str], max_points: int = MAX_POINTS) -> list[Point]:
    """Points from text values, each ``x,y`` or a JSON list of ``[x, y]`` pairs (or one pair).

    Stops at ``max_points`` so that a request holding thousands costs no more than one
    holding a few. Raises :class:`InputError` (``invalid_option``) naming the bad value.
    """
    points: list[Point] = []
    for n, raw in enumerate(values, 1):
        text = raw.strip()
        try:
            if text.startswith("["):
                found = _json(text)
                pair = _json_numbers(found, 2)
                pairs = [pair] if pair is not None else [_json_numbers(v, 2) for v in found] if isinstance(found, list) else [None]
                if any(p is None for p in pairs):
                    raise _invalid(f"{text[:40]!r} is not a list of [x, y] pairs of finite numbers")
                points.extend(pairs)  # type: ignore[arg-type]
            else:
                points.append(numbers(text, 2))  # type: ignore[arg-type]
        except InputError as exc:
            raise _invalid(f"point {n}: {exc.message}; write a point as {POINT_HELP} "
                           "(repeat the field for more), or a JSON list [[812, 400], [90, 1200]]") from None
        if len(points) > max_points:
            raise _invalid(f"more than {max_points} points given; at most {max_points} keep + drop points")
    return points


def parse_box(values: Iterable[str]) -> Box | None:
    """A box from text values: none, or one ``left,top,right,bottom`` (or JSON list of four).

    Raises :class:`InputError` for two boxes, a bad value or a box with no area.
    """
    values = [v.strip() for v in values if v.strip()]
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(f"{len(values)} boxes given; give one box ({BOX_HELP})")
    text = values[0]
    try:
        box = _json_numbers(_json(text), 4) if text.startswith("[") else numbers(text, 4)
    except InputError as exc:
        raise _invalid(f"{exc.message}; write a box as {BOX_HELP}") from None
    if box is None:
        raise _invalid(f"{text[:40]!r} is not four finite numbers; write a box as {BOX_HELP}")
    left, top, right, bottom = box
    if not (left < right and top < bottom):
        raise _invalid(f"{text[:40]!r} has no area: a box needs left < right and top < bottom")
    return left, top, right, bottom
