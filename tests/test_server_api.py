"""The HTTP API, over a real ``python -m bgclear.server`` process (segmenter u2netp).

The server runs with an audit hook and with its working and temporary folders
set to empty folders, so the last test can check that no upload reached the disk.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import format_samples  # noqa: E402
from server_fixtures import AUDIT_PRELUDE, disc_image, start_server  # noqa: E402

W, H = 640, 480
DISC = (W // 2 - int(0.3 * H), H // 2 - int(0.3 * H), W // 2 + int(0.3 * H), H // 2 + int(0.3 * H))


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("server-io")
    dirs = {"cwd": base / "cwd", "tmp": base / "tmp", "log": base / "log"}
    for d in dirs.values():
        d.mkdir()
    return dirs


@pytest.fixture(scope="module")
def server(watched: dict[str, Path]):
    env = {"TMPDIR": str(watched["tmp"]), "TEMP": str(watched["tmp"]), "TMP": str(watched["tmp"]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = start_server(watched["log"] / "server.log", "--max-bytes", "10000000", cwd=watched["cwd"], env=env,
                        prelude=AUDIT_PRELUDE)
    # What start-up left (onnxruntime writes a small '.ses' marker into $TMPDIR on import).
    proc.extra["before"] = {k: snapshot(watched[k]) for k in ("cwd", "tmp")}
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def png() -> bytes:
    return disc_image(W, H, "PNG")


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return disc_image(W, H, "JPEG", quality=95)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def post(client: httpx.Client, data: bytes, params: dict | None = None, field: str = "image_file",
         form: dict | None = None, headers: dict | None = None) -> httpx.Response:
    return client.post("/v1/remove", params=params, files={field: ("photo.png", data)}, data=form, headers=headers)


def image_of(response: httpx.Response) -> Image.Image:
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 15
    return error["message"]


def centre_and_corner(img: Image.Image, band: int) -> tuple[int, int]:
    arr = np.asarray(img)
    arr = arr[..., band] if arr.ndim == 3 else arr
    return int(arr[H // 2, W // 2]), int(arr[5, 5])


# ---- success paths -----------------------------------------------------------

def test_healthz_says_ready_with_limits(client: httpx.Client) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ready"
    assert body["segmenter"] == "u2netp"
    assert body["max_bytes"] == 10_000_000
    assert {"JPEG", "PNG", "WEBP"} <= set(body["accepted_formats"])


@pytest.fixture(scope="module")
def default_response(client: httpx.Client, jpeg: bytes) -> httpx.Response:
    return post(client, jpeg)


def test_default_is_full_resolution_transparent_png(default_response: httpx.Response) -> None:
    r = default_response
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = image_of(r)
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (W, H)
    centre, corner = centre_and_corner(img, 3)
    assert centre > 240 and corner < 10
    assert (int(r.headers["x-width"]), int(r.headers["x-height"])) == (W, H)
    left, top = int(r.headers["x-foreground-left"]), int(r.headers["x-foreground-top"])
    right = left + int(r.headers["x-foreground-width"])
    bottom = top + int(r.headers["x-foreground-height"])
    assert all(abs(a - b) <= 12 for a, b in zip((left, top, right, bottom), DISC))
    warnings = json.loads(r.headers["x-warnings"])
    assert any("small" in w for w in warnings)
    assert "segment;dur=" in r.headers["server-timing"]
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("how", ["file-field", "raw-body"])
def test_other_ways_to_send_the_image(client: httpx.Client, png: bytes, how: str) -> None:
    if how == "file-field":
        r = post(client, png, field="file")
    else:
        r = client.post("/v1/remove", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert image_of(r).size == (W, H)


def test_json_format_with_size_auto(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"format": "json", "size": "auto"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"image", "width", "height", "foreground_bbox", "timings", "warnings"}
    img = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (body["width"], body["height"]) == (W, H)
    assert all(abs(a - b) <= 12 for a, b in zip(body["foreground_bbox"], DISC))
    assert body["timings"]["segment"] > 0 and body["timings"]["total"] >= body["timings"]["segment"]
    assert any("small" in w for w in body["warnings"])


def test_accept_header_asks_for_json(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"format": "webp"}, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "webp"
    assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).format == "WEBP"


def test_jpg_is_flattened_onto_bg_color(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"format": "jpg", "bg_color": "00ff00", "quality": "90"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    img = image_of(r)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (W, H)
    corner = np.asarray(img)[5, 5].astype(int)
    assert abs(corner - (0, 255, 0)).max() < 12
    centre = np.asarray(img)[H // 2, W // 2].astype(int)
    assert abs(centre - (230, 80, 40)).max() < 25


def test_webp_keeps_alpha(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"format": "webp"})
    assert r.status_code == 200, r.text
    img = image_of(r)
    assert r.headers["content-type"] == "image/webp"
    assert img.format == "WEBP" and img.mode == "RGBA"
    centre, corner = centre_and_corner(img, 3)
    assert centre > 240 and corner < 10


def test_options_as_form_fields_named_colour(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, form={"bg_color": "white", "bogus": "1"})
    assert r.status_code == 200, r.text
    img = image_of(r)
    assert img.mode == "RGB"
    assert tuple(np.asarray(img)[5, 5]) == (255, 255, 255)
    assert any("bogus" in w for w in json.loads(r.headers["x-warnings"]))


def test_channels_alpha_returns_the_matte(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"channels": "alpha"})
    assert r.status_code == 200, r.text
    img = image_of(r)
    assert img.mode == "L" and img.size == (W, H)
    centre, corner = centre_and_corner(img, 0)
    assert centre > 240 and corner < 10


def test_crop_with_margin(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, params={"crop": "true", "crop_margin": "10px", "format": "json"})
    assert r.status_code == 200, r.text
    body = r.json()
    l, t, rr, b = body["foreground_bbox"]
    assert body["crop_box"] == [l - 10, t - 10, rr + 10, b + 10]
    assert (body["width"], body["height"]) == (rr - l + 20, b - t + 20)
    img = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert img.size == (body["width"], body["height"])


def test_shadow_darkens_outside_the_subject(client: httpx.Client, png: bytes, default_response: httpx.Response) -> None:
    plain = np.asarray(image_of(default_response))
    shadowed = np.asarray(image_of(post(client, png, params={"shadow": "true"})))
    # Just below the disc's lowest point: transparent without shadow, partly covered with it.
    y, x = DISC[3] + 8, W // 2 + 6
    assert plain[y, x, 3] < 5
    assert shadowed[y, x, 3] > 10
    assert shadowed[y, x, :3].max() < 60  # the shadow is dark


def test_size_preview_downscales_the_output(client: httpx.Client) -> None:
    big = disc_image(1200, 900, "JPEG", quality=90)
    r = post(client, big, params={"size": "preview"})
    assert r.status_code == 200, r.text
    assert image_of(r).size == (1000, 750)
    assert (r.headers["x-width"], r.headers["x-source-width"]) == ("1000", "1200")


# ---- refusals ----------------------------------------------------------------

def test_empty_upload(client: httpx.Client) -> None:
    assert_error(post(client, b""), 422, "empty")
    assert_error(client.post("/v1/remove", content=b""), 422, "empty")


def test_too_large_by_content_length(client: httpx.Client) -> None:
    body = b"\xff\xd8\xff" + bytes(10_500_000)
    message = assert_error(post(client, body), 413, "too_large")
    assert "10 MB" in message
    assert_error(client.post("/v1/remove", content=body), 413, "too_large")


def test_too_large_while_streaming_without_length(client: httpx.Client) -> None:
    def chunks():
        for _ in range(12):
            yield b"\x89PNG\r\n\x1a\n" + bytes(1_000_000)

    r = client.post("/v1/remove", content=chunks(), headers={"content-type": "image/png"})
    assert_error(r, 413, "too_large")


def test_huge_claimed_length_is_refused_before_the_body(server) -> None:
    """The server answers from the headers alone: no body is ever sent here."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 5000000000\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}}"):
            data = s.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "too_large"


def test_too_many_pixels(client: httpx.Client) -> None:
    buf = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buf, "PNG")  # 49 MP in a few kB
    message = assert_error(post(client, buf.getvalue()), 413, "too_many_pixels")
    assert "7000x7000" in message


@pytest.mark.parametrize("data,what", [
    (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    (b"8BPS\x00\x01" + bytes(64), "not an image"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42" + bytes(64), "video"),
])
def test_unsupported_format(client: httpx.Client, data: bytes, what: str) -> None:
    assert what in assert_error(post(client, data), 415, "unsupported_format")


def test_unreadable_truncated_png(client: httpx.Client, png: bytes) -> None:
    assert_error(post(client, png[:300]), 422, "unreadable")
    # Accepted formats by their bytes, but nothing after the header: the decoder says so.
    assert_error(post(client, b"GIF89a" + bytes(64)), 422, "unreadable")
    assert "HEIF" in assert_error(post(client, b"\x00\x00\x00\x18ftypheic" + bytes(64)), 422, "unreadable")


@pytest.mark.parametrize("params,field", [
    ({"bg_color": "blurple"}, "bg_color"),
    ({"format": "gif"}, "format"),
    ({"channels": "rgb"}, "channels"),
    ({"crop_margin": "lots"}, "crop_margin"),
    ({"size": "4k"}, "size"),
    ({"quality": "0"}, "quality"),
    ({"crop": "maybe"}, "crop"),
])
def test_invalid_option(client: httpx.Client, png: bytes, params: dict, field: str) -> None:
    assert field in assert_error(post(client, png, params=params), 422, "invalid_option")


def test_form_without_image(client: httpx.Client) -> None:
    r = client.post("/v1/remove", files={"format": (None, "png")})
    assert "image_file" in assert_error(r, 400, "missing_file")
    r = client.post("/v1/remove", files={"image_url": (None, "http://127.0.0.1/x.jpg")})
    assert "image_url" in assert_error(r, 400, "missing_file")


def test_unknown_paths_and_methods_answer_json(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/remove"), 405, "method_not_allowed")


# ---- documentation -----------------------------------------------------------

def test_openapi_documents_the_api(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1/remove"]["post"]
    names = {p["name"] for p in op["parameters"]}
    assert {"format", "bg_color", "channels", "crop", "crop_margin", "shadow", "size"} <= names
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "image_file" in form["properties"]
    ok = op["responses"]["200"]["content"]
    assert {"image/png", "image/jpeg", "image/webp", "application/json"} <= set(ok)
    assert ok["application/json"]["example"]["width"] > 0
    assert "too_large" in op["responses"]["413"]["content"]["application/json"]["examples"]
    assert {"RemoveResult", "ErrorResponse"} <= set(schema["components"]["schemas"])


def test_page_is_served_with_the_privacy_note(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "never stored" in r.text
    external = re.compile(r"""(src|href|from|import|url)\s*[=(]?\s*["']?(https?:)?//""")
    assert not external.search(r.text), "the page must load nothing from other sites"
    for asset in ("/static/app.js", "/static/zip.js", "/static/touchup.js", "/static/app.css"):
        a = client.get(asset)
        assert a.status_code == 200
        assert not external.search(a.text), asset


# ---- every input format, under the privacy guard below --------------------------

#: Every accepted format (a cutout; a refused one would answer 415): all uploaded under
#: the audit hook, with a distinctive file name that must not reach the log.
FORMAT_UPLOADS = {
    "JPEG": ({"quality": 90}, 200), "PNG": ({}, 200), "WEBP": ({"quality": 90}, 200),
    "WEBP-lossless": ({"lossless": True}, 200), "PNG-RGBA": ({}, 200),
    "TIFF": ({}, 200), "BMP": ({}, 200), "GIF": ({}, 200), "HEIC": ({}, 200), "AVIF": ({}, 200),
}
SECRET_NAME = "secret-holiday-{}.img"


@pytest.mark.parametrize("fmt", list(FORMAT_UPLOADS))
def test_every_format_is_processed_in_memory(client: httpx.Client, fmt: str) -> None:
    save, status = FORMAT_UPLOADS[fmt]
    kind = fmt.split("-")[0]
    img = Image.open(io.BytesIO(disc_image(W, H, "PNG")))
    if fmt == "PNG-RGBA":
        img = img.convert("RGBA")
    elif kind == "GIF":
        img = img.convert("P")
    data = format_samples.encode(img, kind, **save)
    for how in ("multipart", "raw"):
        if how == "multipart":
            r = client.post("/v1/remove", files={"image_file": (SECRET_NAME.format(fmt), data)})
        else:
            r = client.post("/v1/remove", content=data, headers={"Content-Disposition": f'attachment; filename="{SECRET_NAME.format(fmt)}"'})
        assert r.status_code == status, r.text
        if status == 200:
            assert image_of(r).mode == "RGBA" and image_of(r).size == (W, H)
        else:
            assert r.json()["error"]["code"] == "unsupported_format"


# ---- privacy: last, so it also covers every upload above -----------------------

def test_no_upload_reaches_the_disk(client: httpx.Client, server, watched: dict[str, Path]) -> None:
    # Large enough that a multipart parser would spool it to a temporary file.
    big = disc_image(1200, 900, "PNG", compress_level=0)
    assert len(big) > 3_000_000
    assert post(client, big, params={"size": "preview"}).status_code == 200
    assert client.post("/v1/remove", content=big, params={"size": "preview"}).status_code == 200
    assert post(client, big + bytes(8_000_000)).status_code == 413
    # Touch-up: an image held under an edit handle, clicked on (MobileSAM's work kept with it), then forgotten.
    held = post(client, big, params={"size": "preview", "edit": "true", "keep": "600,450"})
    handle = held.headers["X-Edit-Id"]
    clicked = client.post(f"/v1/remove/{handle}", params={"size": "preview", "keep": "600,450", "drop": "5,5"})
    assert clicked.status_code == 200 and client.delete(f"/v1/remove/{handle}").status_code == 204
    assert {k: snapshot(watched[k]) for k in ("cwd", "tmp")} == server.extra["before"]
    log = server.log()
    assert "AUDIT-WRITE" not in log, [line for line in log.splitlines() if "AUDIT-WRITE" in line]
    assert "photo.png" not in log  # the uploaded file name is never logged
    assert "secret-holiday" not in log
    # No pixel data either: no run of the uploads' bytes, raw, hex or base64, appears in the log.
    sample = disc_image(W, H, "PNG")[100:124]
    assert base64.b64encode(sample).decode() not in log and sample.hex() not in log
    assert not re.search(r"[A-Za-z0-9+/]{200,}", log), "a long base64-like run in the server log"
