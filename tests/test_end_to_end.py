"""A real model (U2NetP) through the public API and the CLI, real files in and out."""

import io
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from bgclear import InputError, remove
from conftest import SAMPLE, composite, encode_pil, soft_disc


def test_remove_keeps_full_resolution_and_finds_the_subject(small_session):
    h, w = 1500, 2000  # above the small-image threshold, so no warning
    gt = soft_disc(w, h, radius_frac=0.3, soft=4)
    img = composite(gt, fg=(230, 60, 40), bg=(235, 235, 235), noise=2)
    cut = remove(Image.fromarray(img), session=small_session)
    assert cut.size == (w, h) and cut.pixels.shape == (h, w, 4)
    assert cut.alpha.dtype == np.float32 and 0 <= cut.alpha.min() and cut.alpha.max() <= 1
    assert not cut.warnings
    inter = ((cut.alpha > 0.5) & (gt > 0.5)).sum()
    union = ((cut.alpha > 0.5) | (gt > 0.5)).sum()
    assert inter / union > 0.9
    assert set(cut.timings) >= {"decode", "segment", "trimap", "matte", "foreground", "compose"}


def test_inputs_of_every_kind_give_the_same_cutout(small_session, tmp_path):
    arr = np.asarray(Image.open(SAMPLE).convert("RGB"))
    path = tmp_path / "cat.png"
    path.write_bytes(SAMPLE.read_bytes())
    results = [
        remove(src, session=small_session).alpha
        for src in (str(path), path, SAMPLE.read_bytes(), Image.open(SAMPLE), arr)
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_small_image_warns_and_png_output_is_rgba(small_session):
    cut = remove(SAMPLE, session=small_session)
    assert any("original" in w for w in cut.warnings)
    png = Image.open(io.BytesIO(cut.encode("png")))
    assert png.mode == "RGBA" and png.size == Image.open(SAMPLE).size
    a = np.asarray(png)[..., 3]
    assert a.min() == 0 and a.max() == 255


def test_existing_alpha_is_respected(small_session):
    img = composite(soft_disc(300, 200), noise=1)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, :150, 3] = 0  # left half already transparent
    cut = remove(encode_pil(Image.fromarray(rgba), "PNG"), session=small_session)
    assert cut.alpha[:, :150].max() == 0


def test_session_is_shared_across_threads(small_session):
    img = composite(soft_disc(320, 240), noise=1)
    expected = remove(img, session=small_session).alpha
    results, errors = [], []

    def work():
        try:
            results.append(remove(img, session=small_session).alpha)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_bad_input_raises_documented_error(small_session):
    with pytest.raises(InputError) as err:
        remove(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, session=small_session)
    assert err.value.code == "unreadable"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bgclear.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_single_file_options(tmp_path):
    src = tmp_path / "photo.jpg"
    src.write_bytes(encode_pil(Image.fromarray(composite(soft_disc(400, 300), noise=2)), "JPEG", quality=95))
    r = run_cli("remove", str(src), "--segmenter", "u2netp")
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "photo.png")
    assert out.mode == "RGBA" and out.size == (400, 300)
    assert "small" in r.stderr  # the hint reaches the user

    r = run_cli("remove", str(src), "-o", str(tmp_path / "white.jpg"), "--bg", "#00ff00", "--segmenter", "u2netp")
    assert r.returncode == 0, r.stderr
    jpg = Image.open(tmp_path / "white.jpg")
    assert jpg.format == "JPEG" and jpg.size == (400, 300)
    assert np.asarray(jpg)[2, 2].tolist()[1] > 200  # corner is the green background

    r = run_cli("remove", str(src), "-o", str(tmp_path / "m.png"), "--mask", "--crop", "--segmenter", "u2netp")
    assert r.returncode == 0, r.stderr
    m = Image.open(tmp_path / "m.png")
    assert m.mode == "L" and m.size[0] < 400


def test_cli_folder_with_a_bad_file_finishes_the_rest(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    img = Image.fromarray(composite(soft_disc(200, 150), noise=2))
    img.save(folder / "a.png")
    img.save(folder / "sub" / "b.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    r = run_cli("remove", str(folder), "-o", str(out), "--segmenter", "u2netp", "-j", "2")
    assert r.returncode == 1
    assert "broken.jpg" in r.stderr and "2 done" in r.stderr and "1 failed" in r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.png"]
    assert not list(out.rglob("*.part"))
    r = run_cli("remove", str(folder), "-o", str(out), "--segmenter", "u2netp", "--skip-existing")
    assert "2 skipped" in r.stderr


def test_cli_refuses_bad_file_without_writing_output(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"<html>not an image</html>")
    r = run_cli("remove", str(bad), "--segmenter", "u2netp")
    assert r.returncode == 1
    assert "HTML" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]
    r = run_cli("remove", str(tmp_path / "missing.jpg"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_cli_models_list_and_path():
    r = run_cli("models", "list")
    assert r.returncode == 0 and "isnet" in r.stdout and "u2netp" in r.stdout
    r = run_cli("models", "path", "u2netp")
    assert r.returncode == 0 and r.stdout.strip().endswith("u2netp.onnx")


def test_jpg_of_a_transparent_cutout_keeps_the_shadow(small_session):
    img = composite(soft_disc(400, 300, radius_frac=0.25), fg=(200, 30, 30), bg=(235, 235, 235), noise=1)
    plain = np.asarray(Image.open(io.BytesIO(remove(img, session=small_session).encode("jpg"))))
    cut = remove(img, session=small_session, shadow=True)
    shadowed = np.asarray(Image.open(io.BytesIO(cut.encode("jpg"))))
    assert plain.shape == shadowed.shape == (300, 400, 3)
    # Where only the shadow covers the background, it darkens the white flattening.
    only_shadow = np.where(cut.alpha < 0.01, cut.pixels[..., 3], 0)
    y, x = np.unravel_index(np.argmax(only_shadow), only_shadow.shape)
    assert only_shadow[y, x] > 20
    assert shadowed[y, x].mean() < plain[y, x].mean() - 10
