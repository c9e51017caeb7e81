"""Which files a batch job processes, and whether an output is already complete."""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..batch import IMAGE_SUFFIXES, BatchJob, _walk

log = logging.getLogger("bgclear")



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
    from ..stages.compose import parse_color

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


