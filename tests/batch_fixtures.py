"""Helpers shared by the ``bgclear batch`` tests: photos made here, reference cutouts, running the command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import composite, soft_disc

#: Options every batch test uses: the 4.6 MB model, so a few dozen files take seconds.
FAST = ["--segmenter", "u2netp"]


def make_photos(folder: Path, count: int, size: tuple[int, int] = (480, 360), sub: str | None = "shelf") -> list[Path]:
    """``count`` JPEG photos of a coloured disc on a plain background, each a little different.

    With ``sub``, every third photo goes into that sub-folder (outputs must keep the layout).
    """
    paths = []
    for i in range(count):
        w, h = size[0] + 8 * (i % 5), size[1]
        alpha = soft_disc(w, h, radius_frac=0.22 + 0.02 * (i % 4), soft=3.0 + i % 3)
        fg = (200 + i % 50, 40 + 7 * i % 180, 30 + 11 * i % 120)
        bg = (30 + 5 * i % 60, 70 + 3 * i % 80, 190 + i % 60)
        pixels = composite(alpha, fg=fg, bg=bg, noise=3.0, seed=i)
        target = folder / sub if sub and i % 3 == 2 else folder
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"photo{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=92)
        paths.append(path)
    return paths


def make_bad_files(folder: Path, good: Path) -> dict[str, str]:
    """A truncated JPEG and a text file named like an image; returns name -> words its failure reason holds."""
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[:1500])
    (folder / "notes.png").write_bytes(b"shopping list, not a photo\n")
    return {"truncated.jpg": "damaged or truncated", "notes.png": "not a recognised image"}


def reference_cutouts(src: Path, out: Path, extra: list[str] | None = None) -> dict[str, bytes]:
    """What ``bgclear remove SRC -o OUT`` writes for a folder (relative name -> bytes): the real command.

    Bad files in SRC make it exit 1; the good ones are still written.
    """
    from click.testing import CliRunner

    from bgclear.cli import main

    result = CliRunner().invoke(main, ["remove", str(src), "-o", str(out), *FAST, *(extra or [])])
    assert result.exit_code in (0, 1), result.output
    refs = outputs(out)
    assert refs, result.output
    return refs


def batch_cmd(src: str | Path, dst: Path, *args: str) -> list[str]:
    """The command line of ``bgclear batch`` (run as a module: cli.py registers it as ``bgclear batch``)."""
    return [sys.executable, "-m", "bgclear.distributed", str(src), str(dst), *FAST, "--no-progress", *args]


def run_batch_cli(src: str | Path, dst: Path, *args: str, env: dict[str, str] | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(batch_cmd(src, dst, *args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def read_report(dst: Path) -> dict:
    return json.loads((dst / "bgclear-batch-report.json").read_text())


def outputs(dst: Path) -> dict[str, bytes]:
    """Every image output below ``dst`` (relative name -> bytes)."""
    return {str(p.relative_to(dst)): p.read_bytes() for p in sorted(dst.rglob("*.png")) if not p.name.startswith(".")}


def leftovers(dst: Path) -> list[Path]:
    """Temporary or hidden files left below ``dst`` (the lock of a killed run aside)."""
    return [p for p in dst.rglob(".*") if p.name != ".bgclear-batch.lock"]


def decodes_fully(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # noqa: BLE001
        return False


def kill_when_outputs(cmd: list[str], dst: Path, at_least: int, env: dict[str, str] | None = None,
                      timeout: float = 240) -> int:
    """Start ``cmd``, SIGKILL it (and only it) once ``at_least`` outputs exist; returns how many there were."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the job ended before it could be killed: {proc.stderr.read()[-3000:]}")
            count = len(outputs(dst)) if dst.exists() else 0
            if count >= at_least:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return count
            time.sleep(0.05)
        raise AssertionError("no outputs appeared in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def as_array(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)))
