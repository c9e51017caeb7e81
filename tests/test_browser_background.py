"""The page's "your own background photo", in Debian's Chromium against a real server.

The preview composites in the browser (the photo as the cutout's CSS background, covering
it, centred); the JPG download composites at full resolution in a canvas. Both must match
what the API's bg_image_file gives for the same photo.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image  # noqa: E402
from test_browser import CHROMIUM, browser, files, page, server, wait_done  # noqa: E402, F401 - fixtures

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

W, H = 640, 480


def two_tone(width: int, height: int, fmt: str = "PNG") -> bytes:
    """Top half red, bottom half green."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = (220, 0, 0)
    pixels[height // 2 :] = (0, 200, 0)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def test_own_background_photo_preview_and_full_resolution_jpg(page, server, tmp_path: Path) -> None:
    disc = disc_image(W, H)
    photo = two_tone(200, 400)  # portrait behind a landscape cutout: scaled x3.2, top and bottom cut
    page.set_input_files("#file-input", files(tmp_path, disc_png=disc))
    it = wait_done(page)
    chip = it.locator(".swatch.photo")
    assert chip.get_attribute("title") == "Your own background photo"
    chip.locator("input").set_input_files(files(tmp_path, bg_png=photo))
    it.locator(".swatch.photo.chosen").wait_for()
    background = it.locator(".cutout").evaluate("img => getComputedStyle(img).backgroundImage + ' ' + getComputedStyle(img).backgroundSize")
    assert "blob:" in background and "cover" in background
    assert it.locator("input[type=radio]:checked").count() == 0

    with page.expect_download() as dl:
        it.locator(".download-jpg").click()
    jpg = Image.open(dl.value.path())
    assert jpg.format == "JPEG" and jpg.size == (W, H)
    arr = np.asarray(jpg).astype(int)
    for y, colour in ((3, (220, 0, 0)), (H - 4, (0, 200, 0))):
        for x in (3, W - 4):
            assert np.abs(arr[y, x] - colour).max() < 25, (y, x, arr[y, x])
    assert np.abs(arr[H // 2, W // 2] - (230, 80, 40)).max() < 30

    # The same photo through the API's bg_image_file: the same picture.
    r = httpx.post(f"{server.url}/v1.0/removebg", files={"image_file": ("a.png", disc), "bg_image_file": ("b.png", photo)},
                   data={"size": "full", "format": "png"}, timeout=60)
    assert r.status_code == 200, r.text
    served = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    assert np.abs(served - arr).mean() < 4

    # Back to a colour: the photo goes.
    it.locator(".swatch[title='White'] span").click()
    assert it.locator(".cutout").evaluate("img => getComputedStyle(img).backgroundImage") == "none"
    assert it.locator(".swatch.photo.chosen").count() == 0


def test_a_photo_the_browser_cannot_read_gets_a_message(page, tmp_path: Path) -> None:
    page.set_input_files("#file-input", files(tmp_path, disc_png=disc_image(W, H)))
    it = wait_done(page)
    it.locator(".swatch.photo input").set_input_files(files(tmp_path, notes_txt=b"not a picture"))
    it.locator(".error").filter(has_text="cannot read").wait_for(timeout=10_000)  # the check is asynchronous
    assert it.locator(".swatch.photo.chosen").count() == 0
