"""The web page against a server that requires an API key, in Debian's Chromium via Playwright:
it asks for the key, keeps it for the tab only (sessionStorage), sends it as X-Api-Key, asks
again when the server refuses it; and it cuts out a HEIC photo, the format phones save.

Skipped like tests/test_browser.py when chromium or playwright is absent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_browser import TIMEOUT_MS, browser, pytestmark  # noqa: E402,F401  (its fixture, and its skip without chromium)

import format_samples as fs  # noqa: E402
from server_fixtures import photo_like, start_server  # noqa: E402

KEY = "bgc_page_5e1f0c9a7d3b2e4f"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("page-keys")
    (folder / "keys.txt").write_text(f"# the page test's key\n{KEY}\n")
    proc = start_server(folder / "server.log", "--api-keys", str(folder / "keys.txt"))
    yield proc
    proc.stop()


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("x-api-key")) if "/v1/remove" in r.url else None)
    page.goto(url + "/")
    page.wait_for_selector("#server-status:has-text('Ready')")
    return context, page, errors, sent


def enter_key(page, key: str) -> None:
    page.locator("#key-form").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")


def test_the_page_asks_for_a_key_keeps_it_for_the_tab_and_asks_again_on_403(browser, keyed_server, tmp_path) -> None:
    context, page, errors, sent = open_page(browser, keyed_server.url)
    assert "API key" in page.locator("#key-note").inner_text()
    enter_key(page, "not-the-key")
    assert page.locator("#key-form").is_hidden()
    photo = tmp_path / "photo.png"
    photo_like(480, 360).save(photo)
    page.set_input_files("#file-input", [str(photo)])
    # The server refuses the wrong key: the page asks again and the photo waits for it.
    page.locator("#key-note", has_text="refused").wait_for(timeout=TIMEOUT_MS)
    assert "Waiting for an API key" in page.locator(".item .state").inner_text()
    enter_key(page, KEY)
    page.locator(".item .state", has_text="Done").wait_for(timeout=TIMEOUT_MS)
    assert sent == ["not-the-key", KEY]
    storage = page.evaluate("() => ({session: {...sessionStorage}, local: localStorage.length, cookies: document.cookie})")
    assert storage == {"session": {"bgclear-api-key": KEY}, "local": 0, "cookies": ""}
    assert KEY not in page.url
    context.close()
    assert errors == []

    # Another browser session starts without the key and is asked for it again.
    context, page, errors, _ = open_page(browser, keyed_server.url)
    assert page.locator("#key-form").is_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    context.close()
    assert errors == []


def test_a_heic_photo_from_a_phone_is_cut_out(browser, keyed_server, tmp_path) -> None:
    context, page, errors, _ = open_page(browser, keyed_server.url)
    accept = page.locator("#file-input").get_attribute("accept")
    assert {".heic", "image/heic", "image/avif", ".avif", "image/tiff"} <= set(accept.split(","))
    assert "HEIC" in page.locator("#limits").inner_text() and "AVIF" in page.locator("#limits").inner_text()
    enter_key(page, KEY)
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(fs.heic(photo_like(480, 360), exif=fs.exif_orientation(6)))  # held upright: turned
    page.set_input_files("#file-input", [str(photo)])
    it = page.locator(".item").first
    it.locator(".state").filter(has_text="Done").wait_for(timeout=TIMEOUT_MS)
    assert it.locator(".cutout").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [360, 480]
    context.close()
    assert errors == []
