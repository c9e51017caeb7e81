"""The web page in Debian's Chromium, driven by Playwright, against a real server process.

Skipped when /usr/bin/chromium is absent (``apt-get install -y chromium``).
``python tests/test_browser.py --screenshot`` writes docs/screenshot.png.
"""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import REPO, disc_image, photo_like, start_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

W, H = 640, 480
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("browser") / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    pg.wait_for_selector("#server-status:has-text('Ready')")
    yield pg
    context.close()
    assert errors == [], errors


def files(tmp_path: Path, **named: bytes) -> list[str]:
    paths = []
    for name, data in named.items():
        path = tmp_path / name.replace("_", ".")
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def item(page, n: int = 0):
    return page.locator(".item").nth(n)


def wait_done(page, n: int = 0):
    it = item(page, n)
    it.locator(".state").filter(has_text="Done").wait_for(timeout=TIMEOUT_MS)
    return it


def stage_bg(it) -> str:
    return it.locator(".stage").evaluate("el => getComputedStyle(el).backgroundColor")


def test_upload_preview_backgrounds_and_downloads(page, tmp_path: Path) -> None:
    assert "never stored" in page.locator("#privacy").inner_text()
    page.set_input_files("#file-input", files(tmp_path, disc_png=disc_image(W, H)))
    it = wait_done(page)
    assert it.locator(".cutout").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [W, H]
    assert "small" in it.locator(".warnings").inner_text()

    it.locator(".swatch[title='White'] span").click()
    assert stage_bg(it) == "rgb(255, 255, 255)"
    it.locator(".swatch[title='Black'] span").click()
    assert stage_bg(it) == "rgb(0, 0, 0)"
    it.locator("input[type=color]").fill("#336699")
    assert stage_bg(it) == "rgb(51, 102, 153)"

    toggle = it.locator(".before-after")
    toggle.click()
    assert it.locator(".original").is_visible() and not it.locator(".cutout").is_visible()
    toggle.click()
    assert it.locator(".cutout").is_visible() and not it.locator(".original").is_visible()

    with page.expect_download() as dl:
        it.locator(".download-png").click()
    png = Image.open(dl.value.path())
    assert dl.value.suggested_filename == "disc-cutout.png"
    assert png.format == "PNG" and png.mode == "RGBA" and png.size == (W, H)
    alpha = np.asarray(png)[..., 3]
    assert alpha[H // 2, W // 2] > 240 and alpha[5, 5] < 10

    with page.expect_download() as dl:
        it.locator(".download-jpg").click()
    jpg = Image.open(dl.value.path())
    assert jpg.format == "JPEG" and jpg.size == (W, H)
    assert np.abs(np.asarray(jpg)[5, 5].astype(int) - (51, 102, 153)).max() < 10  # the chosen colour


def test_bad_files_get_a_message_and_the_others_continue(page, tmp_path: Path) -> None:
    big = b"\xff\xd8\xff" + bytes(10_100_000)
    page.set_input_files("#file-input", files(tmp_path, notes_txt=b"hello, not an image", huge_jpg=big,
                                              good_png=disc_image(W, H)))
    bad = item(page, 0).locator(".error")
    bad.wait_for(timeout=TIMEOUT_MS)
    assert "not an image" in bad.inner_text()
    assert "limit is 10 MB" in item(page, 1).locator(".error").inner_text()
    wait_done(page, 2)
    assert item(page, 2).locator(".error").is_hidden()


def test_drop_two_files_shadow_and_zip(page, tmp_path: Path) -> None:
    data = base64.b64encode(disc_image(W, H)).decode()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "one.png", {type: "image/png"}));
            dt.items.add(new File([bytes], "two.png", {type: "image/png"}));
            return dt;
        }""", data)
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    wait_done(page, 0)
    it = wait_done(page, 1)

    before = it.locator(".cutout").get_attribute("src")
    it.locator(".shadow").check()
    it.locator(".download-png[download$='-shadow.png']").wait_for(state="attached", timeout=TIMEOUT_MS)
    assert it.locator(".cutout").get_attribute("src") != before
    with page.expect_download() as dl:
        it.locator(".download-png").click()
    shadowed = np.asarray(Image.open(dl.value.path()))
    y = H // 2 + int(0.3 * H) + 8  # just below the disc
    assert shadowed[y, W // 2 + 6, 3] > 10

    with page.expect_download() as dl:
        page.locator("#download-all").click()
    with zipfile.ZipFile(dl.value.path()) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["one-cutout.png", "two-cutout.png"]
        assert Image.open(io.BytesIO(z.read("one-cutout.png"))).size == (W, H)


def test_keyboard_and_phone_screen(browser, server, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    pg = context.new_page()
    # Listening before the page loads turns file-chooser interception on in time;
    # enabled only inside expect_file_chooser, the dialog can open first and be missed.
    pg.on("filechooser", lambda _: None)
    pg.goto(server.url + "/")
    pg.keyboard.press("Tab")  # skip link
    pg.keyboard.press("Tab")
    assert pg.evaluate("document.activeElement.id") == "pick"
    with pg.expect_file_chooser() as chooser:
        pg.keyboard.press("Enter")
    chooser.value.set_files(files(tmp_path, phone_png=disc_image(W, H)))
    it = wait_done(pg)
    radio = it.locator("input[type=radio][value='transparent']")
    radio.focus()
    pg.keyboard.press("ArrowRight")  # next swatch: white
    assert stage_bg(it) == "rgb(255, 255, 255)"
    assert pg.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    context.close()


def take_screenshot(browser, url: str, out: Path, size: tuple[int, int] = (1600, 1200)) -> None:
    """A finished cutout of a synthetic product photo, on the page, as a PNG."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "red-apple.jpg"
        photo_like(*size).save(photo, quality=92)
        pg = browser.new_page(viewport={"width": 1100, "height": 860})
        pg.goto(url + "/")
        pg.set_input_files("#file-input", [str(photo)])
        wait_done(pg)
        pg.screenshot(path=str(out), full_page=True)
        pg.close()


def test_screenshot_of_a_finished_cutout(browser, server, tmp_path: Path) -> None:
    out = tmp_path / "screenshot.png"
    take_screenshot(browser, server.url, out, size=(800, 600))
    assert Image.open(out).width == 1100


if __name__ == "__main__" and "--screenshot" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as p:
        srv = start_server(Path(tmp) / "server.log", "--segmenter", "isnet", timeout=180)
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            take_screenshot(chromium, srv.url, REPO / "docs" / "screenshot.png")
        finally:
            chromium.close()
            srv.stop()
    print("wrote docs/screenshot.png")
