"""``bgclear remove --keep / --drop / --box`` on real files, through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE

W, H = 902, 300
HALF = W // 2


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bgclear.cli", "remove", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """two.png: the sample cat beside its mirror image; rotated.jpg: the same pixels stored turned
    a quarter left, with EXIF orientation 8 saying to turn them back."""
    root = tmp_path_factory.mktemp("touchup-cli")
    cat = np.asarray(Image.open(SAMPLE).convert("RGB"))
    two = Image.fromarray(np.hstack([cat, cat[:, ::-1]]))
    two.save(root / "two.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # the viewer turns the stored pixels 90 degrees clockwise
    two.transpose(Image.Transpose.ROTATE_90).save(root / "rotated.jpg", quality=95, exif=exif)
    return root


def halves(path: Path) -> tuple[float, float]:
    alpha = np.asarray(Image.open(path))[..., 3] / 255.0
    assert alpha.shape == (H, W)
    return float(alpha[:, :HALF].mean()), float(alpha[:, HALF:].mean())


@pytest.fixture(scope="module")
def automatic(folder: Path) -> tuple[float, float]:
    done = run_cli("two.png", "-o", "auto.png", "--segmenter", "u2netp", cwd=folder)
    assert done.returncode == 0, done.stderr
    left, right = halves(folder / "auto.png")
    assert left > 0.5 and right > 0.5
    return left, right


def test_a_drop_point_takes_the_right_cat_out(folder: Path, automatic) -> None:
    done = run_cli("two.png", "-o", "fixed.png", "--segmenter", "u2netp", "--drop", "676,150", "--keep", "225,150", cwd=folder)
    assert done.returncode == 0, done.stderr
    left, right = halves(folder / "fixed.png")
    assert right < 0.5 * automatic[1] and left > 0.9 * automatic[0]


def test_points_are_in_pixels_after_exif_orientation(folder: Path, automatic) -> None:
    done = run_cli("rotated.jpg", "-o", "rotated.png", "--segmenter", "u2netp", "--drop", "676,150", cwd=folder)
    assert done.returncode == 0, done.stderr
    left, right = halves(folder / "rotated.png")  # upright again: 902x300
    assert right < 0.5 * automatic[1] and left > 0.8 * automatic[0]


def test_a_box_around_the_left_cat(folder: Path, automatic) -> None:
    done = run_cli("two.png", "-o", "boxed.png", "--segmenter", "u2netp", "--box", "0,0,451,300", cwd=folder)
    assert done.returncode == 0, done.stderr
    left, right = halves(folder / "boxed.png")
    assert right < 0.01 and left > 0.9 * automatic[0]


@pytest.mark.parametrize("args,message", [
    (["--keep", "812"], "'812' has 1 comma-separated value, not 2"),
    (["--keep", "a,b"], "'a' is not a number"),
    (["--drop", "nan,4"], "'nan' is not a number"),
    (["--drop", "inf,4"], "'inf' is not a number"),
    (["--box", "10,10,900"], "not 4"),
    (["--box", "10,10,10,900"], "has no area"),
    ([arg for i in range(65) for arg in ("--keep", f"{i},1")], "at most 64 keep + drop points"),
])
def test_bad_values_are_usage_errors_and_write_nothing(folder: Path, args: list[str], message: str) -> None:
    done = run_cli("two.png", "-o", "bad.png", *args, cwd=folder)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Usage:" in done.stderr
    assert not (folder / "bad.png").exists()


@pytest.mark.parametrize("inputs", [["two.png", "rotated.jpg"], ["."]])
def test_points_take_a_single_file(folder: Path, inputs: list[str]) -> None:
    done = run_cli(*inputs, "-o", "many", "--keep", "1,1", cwd=folder)
    assert done.returncode == 2 and "give a single image file" in done.stderr
    assert not (folder / "many").exists()


def test_a_point_outside_the_photo_fails_with_its_position_and_writes_nothing(folder: Path) -> None:
    done = run_cli("two.png", "-o", "outside.png", "--segmenter", "u2netp", "--keep", "902,10", cwd=folder)
    assert done.returncode == 1
    assert "keep point 1 (902, 10) is outside the 902x300 image" in done.stderr
    assert not (folder / "outside.png").exists()


def test_batch_takes_no_points(folder: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bgclear.cli", "batch", ".", "out", "--keep", "1,1"], capture_output=True,
                          text=True, cwd=folder, timeout=120)
    assert done.returncode == 2 and "No such option" in done.stderr and "--keep" in done.stderr
