"""The page's keep / remove clicks in Debian's Chromium, against a real server with the default
segmenter (ISNet) and MobileSAM.

The photo: the sample cat beside its mirror image (902x300). The automatic cutout keeps
both cats; a "Remove" click on the right cat must take it out of the downloaded,
full-resolution PNG, through the edit handle, and again after the server lost the
handle (the page sends the photo again by itself). Clicks on an EXIF-rotated photo shown
at 100 % land on the same source pixels.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SAMPLE  # noqa: E402
from server_fixtures import start_server  # noqa: E402
# The browser and a fresh page per test, as the page's other tests get them (on this module's server).
from test_browser import CHROMIUM, TIMEOUT_MS, browser, page  # noqa: E402, F401

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

W, H = 902, 300
HALF = W // 2
RIGHT_CAT = (676, 150)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("touchup-photos")
    cat = np.asarray(Image.open(SAMPLE).convert("RGB"))
    two = Image.fromarray(np.hstack([cat, cat[:, ::-1]]))
    two.save(folder / "two-cats.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored a quarter turn left; viewers turn it back
    two.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.jpg", quality=95, exif=exif)
    return {"two": folder / "two-cats.png", "rotated": folder / "rotated.jpg"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("browser-touchup") / "server.log", "--segmenter", "isnet", timeout=180)
    yield proc
    proc.stop()


@pytest.fixture
def calls(page) -> list[tuple[str, str, int]]:
    """(method, url, status) of every API answer the page gets from here on."""
    seen: list[tuple[str, str, int]] = []
    page.on("response", lambda r: seen.append((r.request.method, r.url, r.status)) if "/v1/" in r.url else None)
    return seen


def upload(page, path: Path):
    page.set_input_files("#file-input", [str(path)])
    item = page.locator(".item").first
    item.locator(".state").filter(has_text="Done").wait_for(timeout=TIMEOUT_MS)
    return item


def settled(item) -> None:
    """Wait until the click's request came back."""
    item.page.wait_for_function("el => !el.classList.contains('updating')", arg=item.element_handle(), timeout=TIMEOUT_MS)


def click_source(item, x: float, y: float) -> None:
    """Click where source pixel (x, y) is shown, whatever the picture's size on the screen."""
    img = item.locator(".cutout")
    box = img.bounding_box()
    img.page.mouse.click(box["x"] + (x + 0.5) / W * box["width"], box["y"] + (y + 0.5) / H * box["height"])


def download_halves(item) -> tuple[float, float]:
    with item.page.expect_download(timeout=TIMEOUT_MS) as dl:
        item.locator(".download-png").click()
    png = Image.open(dl.value.path())
    assert png.mode == "RGBA" and png.size == (W, H)  # full resolution
    alpha = np.asarray(png)[..., 3] / 255.0
    return float(alpha[:, :HALF].mean()), float(alpha[:, HALF:].mean())


def edit_calls(calls: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [r for r in calls if re.search(r"/v1/remove/[^/?]+", r[1])]


def test_a_remove_click_takes_the_wrong_cat_out_of_the_download(page, calls, photos) -> None:
    item = upload(page, photos["two"])
    before = download_halves(item)
    assert before[0] > 0.5 and before[1] > 0.5  # the automatic cutout keeps both cats

    item.locator(".mode[data-mode='drop']").click()
    click_source(item, *RIGHT_CAT)
    settled(item)
    marker = item.locator(".marker-drop")
    assert marker.count() == 1
    # The marker sits where the click was: on the right cat.
    box, frame = marker.bounding_box(), item.locator(".cutout").bounding_box()
    assert abs((box["x"] + box["width"] / 2 - frame["x"]) / frame["width"] - RIGHT_CAT[0] / W) < 0.01
    assert [r for r in edit_calls(calls) if r[0] == "POST"], "the click went through the edit handle"
    after = download_halves(item)
    assert after[1] < 0.5 * before[1], (before, after)
    assert after[0] > 0.9 * before[0], (before, after)
    downloads = [r for r in edit_calls(calls) if r[0] == "POST" and "size=preview" not in r[1]]
    assert downloads and downloads[-1][2] == 200  # the download asked for the full-resolution result

    item.locator(".undo").click()
    settled(item)
    assert item.locator(".marker").count() == 0
    undone = download_halves(item)
    assert undone[1] > 0.9 * before[1]


def test_the_page_sends_the_photo_again_when_the_server_lost_the_handle(page, calls, server, photos) -> None:
    item = upload(page, photos["two"])
    before = download_halves(item)
    edit_id = page.evaluate("() => document.querySelector('.item').dataset.editId")
    assert edit_id, "the page keeps its edit handle on the item"
    # The server loses the photo, as after an expiry, an eviction, a restart or on another replica.
    assert httpx.delete(f"{server.url}/v1/remove/{edit_id}").status_code == 204
    item.locator(".mode[data-mode='drop']").click()
    click_source(item, *RIGHT_CAT)
    settled(item)
    statuses = [r[2] for r in edit_calls(calls) if r[0] == "POST"]
    assert 404 in statuses  # edit_expired ...
    resent = [r for r in calls if r[0] == "POST" and re.search(r"/v1/remove\?", r[1]) and "edit=true" in r[1]]
    assert len(resent) >= 2 and resent[-1][2] == 200  # ... so the photo went again, with the point
    assert page.evaluate("() => document.querySelector('.item').dataset.editId") != edit_id
    assert item.locator(".error").is_hidden()
    after = download_halves(item)
    assert after[1] < 0.5 * before[1] and after[0] > 0.9 * before[0]


def test_clicks_at_100_percent_on_an_exif_rotated_photo(page, photos) -> None:
    item = upload(page, photos["rotated"])
    before = download_halves(item)
    item.locator(".zoom").click()
    img = item.locator(".cutout")
    page.wait_for_function("img => img.naturalWidth === 902 && img.getBoundingClientRect().width > 0",
                           arg=img.element_handle(), timeout=TIMEOUT_MS)
    ratio = page.evaluate("window.devicePixelRatio")
    assert abs(img.bounding_box()["width"] - W / ratio) < 1  # one photo pixel per screen pixel
    stage = item.locator(".stage")
    assert stage.evaluate("s => s.scrollWidth > s.clientWidth")  # wider than the stage: it scrolls
    stage.evaluate(f"s => {{ s.scrollLeft = {RIGHT_CAT[0]} / {ratio} - s.clientWidth / 2; }}")
    item.locator(".mode[data-mode='drop']").click()
    click_source(item, *RIGHT_CAT)
    settled(item)
    after = download_halves(item)
    assert after[1] < 0.5 * before[1] and after[0] > 0.9 * before[0], (before, after)


def test_before_after_slider_and_reset(page, photos) -> None:
    item = upload(page, photos["two"])
    overlay = item.locator(".overlay")
    assert overlay.is_hidden()
    item.locator(".compare").fill("40")
    assert overlay.is_visible()
    assert "inset(0px 60% 0px 0px)" in overlay.evaluate("o => getComputedStyle(o).clipPath")
    assert overlay.evaluate("o => o.naturalWidth") == W  # the original, turned as the cutout is
    item.locator(".compare").fill("0")
    assert overlay.is_hidden()
    item.locator(".mode[data-mode='keep']").click()
    click_source(item, 40, 40)
    settled(item)
    assert item.locator(".marker-keep").count() == 1 and item.locator(".reset").is_enabled()
    item.locator(".reset").click()
    settled(item)
    assert item.locator(".marker").count() == 0 and item.locator(".reset").is_disabled()
