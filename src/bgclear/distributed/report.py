"""Progress bar, tally and the JSON report of a batch job."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from ..batch import BatchJob
from .common import NO_RESULT, timestamp
from .inputs import Plan, WorkItem
from .worker import _failed_row

log = logging.getLogger("bgclear")



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
            stats = self.workers.setdefault((str(row["node"]), int(row["pid"])), {
                "images": 0, "peak_rss_mb": 0.0, "engine": str(row.get("engine", "")),
                "precision": str(row.get("precision", "")), "threads": int(row.get("threads", 0))})
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
    """The JSON report: counts, failures with reasons, images per minute, each worker's engine and peak memory."""
    from .. import __version__

    nodes: dict[str, dict[str, Any]] = {}
    for (node, _pid), stats in tally.workers.items():
        entry = nodes.setdefault(node, {"node": node, "workers": 0, "images": 0, "workers_peak_rss_mb": 0.0})
        entry["workers"] += 1
        entry["images"] += stats["images"]
        entry["workers_peak_rss_mb"] = round(entry["workers_peak_rss_mb"] + stats["peak_rss_mb"], 1)
    engines: dict[tuple[str, str, int], int] = {}
    for stats in tally.workers.values():
        key = (stats["engine"], stats["precision"], stats["threads"])
        engines[key] = engines.get(key, 0) + 1
    refused = [{"source": s, "output": d, "reason": r} for s, d, r in plan.refused]
    options = asdict(job)
    return {
        "bgclear": __version__,
        "source": run["source"],
        "destination": os.path.abspath(dst),
        "started": started,
        "finished": timestamp(),
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
        # What the workers ran, as each resolved it on its own node (``options`` has what was asked for).
        "engines": [{"engine": e, "precision": p, "threads": t, "workers": n} for (e, p, t), n in sorted(engines.items())],
        "workers_detail": [{"node": node, "pid": pid, **stats} for (node, pid), stats in sorted(tally.workers.items())],
        "nodes_detail": sorted(nodes.values(), key=lambda n: n["node"]),
    }


