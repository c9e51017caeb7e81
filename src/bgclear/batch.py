"""Many files through one session: input discovery, output naming, a bounded worker pool.

A file that fails is recorded with its reason and the batch goes on; outputs are
written atomically, so an interrupted batch never leaves a half-written file and
``skip_existing`` resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stages.compose import Shadow
from .io.decode import FORMAT_SUFFIXES
from .errors import BgclearError, ModelError

#: Folders are scanned by suffix (the bytes still decide the format): every format the decoder reads.
IMAGE_SUFFIXES = {suffix for suffixes in FORMAT_SUFFIXES.values() for suffix in suffixes}


@dataclass(frozen=True)
class BatchJob:
    """What to do with every file: the same options as ``bgclear remove``."""

    segmenter: str = "isnet"
    refiner: str = "guided"
    device: str = "cpu"
    engine: str = "auto"
    precision: str = "auto"
    second_opinion: bool = False
    background: str | None = None
    shadow: Shadow | None = None
    crop: bool = False
    crop_margin: int | str = "2%"
    mask: bool = False
    fmt: str = "png"
    quality: int = 92


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed in {self.seconds:.1f}s"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def _output_name(src: Path, fmt: str) -> str:
    return src.stem + "." + fmt


def _walk(folder: Path, exclude: Path | None) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        if exclude is not None and exclude in path.parents:
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            found.append(path)
    return found


def collect_inputs(inputs: list[Path] | tuple[Path, ...], output: Path | None, fmt: str, mask: bool = False) -> list[tuple[Path, Path]]:
    """Pairs (source, destination) for the CLI's INPUTS and ``-o``.

    One file: ``-o`` is the output file (or a folder if it exists as one);
    default NAME.<fmt> beside the input (NAME-nobg.<fmt> if that is the input itself).
    Folders: every image below them, into ``-o`` (default ``<folder>-nobg``),
    keeping sub-folders. Several files: into ``-o``, else beside each input.
    """
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise FileNotFoundError(f"no such file or folder: {p}")
    pairs: list[tuple[Path, Path]] = []
    if len(inputs) == 1 and inputs[0].is_file():
        src = inputs[0]
        if output is not None and not output.is_dir() and not str(output).endswith(("/", "\\")):
            dest = output
        else:
            folder = output if output is not None else src.parent
            dest = folder / _output_name(src, fmt)
        if dest.resolve() == src.resolve():
            dest = dest.with_name(src.stem + "-nobg." + fmt)
        return [(src, dest)]
    if output is not None and output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file; with several inputs -o must be a folder")
    for p in inputs:
        if p.is_dir():
            out_root = output if output is not None else p.with_name(p.name + "-nobg")
            for src in _walk(p, out_root.resolve() if out_root.exists() else None):
                pairs.append((src, out_root / src.relative_to(p).with_suffix("." + fmt)))
        else:
            folder = output if output is not None else p.parent
            dest = folder / _output_name(p, fmt)
            if dest.resolve() == p.resolve():
                dest = dest.with_name(p.stem + "-nobg." + fmt)
            pairs.append((p, dest))
    return pairs


def process_one(session, src: Path, dest: Path, job: BatchJob, prompts: Mapping[str, Any] | None = None) -> list[str]:
    """Cut out ``src`` into ``dest`` (atomic write). Returns the warnings.

    ``prompts``: ``keep`` / ``drop`` / ``box`` for :meth:`Session.remove` (one photo's touch-up).
    """
    cutout = session.remove(src, background=job.background, shadow=job.shadow, crop=job.crop, crop_margin=job.crop_margin,
                            **(prompts or {}))
    cutout.save(dest, fmt=job.fmt, quality=job.quality, mask=job.mask)
    return cutout.warnings


def run_batch(
    files: list[tuple[Path, Path]],
    job: BatchJob,
    workers: int = 1,
    skip_existing: bool = False,
    progress: bool = True,
    session=None,
    prompts: Mapping[str, Any] | None = None,
) -> BatchReport:
    """Process every (source, destination) pair with one shared session and ``workers`` threads
    (``prompts``: see :func:`process_one`)."""
    from tqdm import tqdm

    from .pipeline import get_session

    report = BatchReport()
    start = time.perf_counter()
    todo = []
    for src, dest in files:
        if skip_existing and dest.exists() and dest.stat().st_size > 0:
            report.skipped.append(src)
        else:
            todo.append((src, dest))
    if todo:
        session = session or get_session(job.segmenter, job.refiner, job.device, job.engine, job.precision,
                                         second_opinion=job.second_opinion)
        bar = tqdm(total=len(todo), unit="img", disable=not progress, dynamic_ncols=True)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(process_one, session, src, dest, job, prompts): src for src, dest in todo}
            for fut in as_completed(futures):
                src = futures[fut]
                try:
                    report.warnings.extend(f"{src.name}: {w}" for w in fut.result())
                    report.done.append(src)
                except ModelError:
                    raise
                except (BgclearError, OSError) as exc:
                    report.failed.append((src, str(exc)))
                except Exception as exc:  # noqa: BLE001 - one bad file never stops the batch
                    report.failed.append((src, f"unexpected {exc.__class__.__name__}: {exc}"))
                bar.update(1)
        bar.close()
    report.seconds = time.perf_counter() - start
    return report
