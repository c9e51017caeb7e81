"""remove.bg's API (``POST /v1.0/removebg``, ``GET /v1.0/account``) over a real server process.

Every parameter against our own expectations: sizes, formats, roi, crop and its
margins, scale, position, channels, background colour and photo, shadow; the three
body types; and a bad value of every parameter answered 400 in remove.bg's error
shape, never 5xx, with the server serving normally afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image, served  # noqa: E402

W, H = 640, 480
R = int(0.3 * H)  # the disc's radius
DISC = (W // 2 - R, H // 2 - R, W // 2 + R, H // 2 + R)  # left, top, right, bottom
URL = "/v1.0/removebg"


@pytest.fixture(scope="module")
def png() -> bytes:
    return disc_image(W, H, "PNG")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with served(tmp_path_factory.mktemp("removebg") / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=90) as c:
        yield c


@pytest.fixture(scope="module")
def subject(client: httpx.Client, png: bytes) -> tuple[int, int, int, int]:
    """The disc's box as this server finds it at full size (the matte's soft rim makes it a few px wider)."""
    box = foreground(post(client, png, size="full"))
    assert close(box, DISC, 8)
    return box


def post(client: httpx.Client, image: bytes, **fields: str) -> httpx.Response:
    return client.post(URL, files={"image_file": ("photo.png", image)}, data=fields, headers={"X-Api-Key": "any"})


def image_of(r: httpx.Response) -> Image.Image:
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def foreground(r: httpx.Response) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from the X-Foreground-* headers."""
    left, top = int(r.headers["x-foreground-left"]), int(r.headers["x-foreground-top"])
    return left, top, left + int(r.headers["x-foreground-width"]), top + int(r.headers["x-foreground-height"])


def close(a, b, tol: float) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def assert_error(r: httpx.Response, code: str, status: int = 400) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    errors = r.json()["errors"]
    assert len(errors) == 1 and set(errors[0]) == {"title", "code", "detail"}
    assert errors[0]["code"] == code, errors
    assert errors[0]["title"] and len(errors[0]["detail"]) > 10
    return errors[0]["detail"]


# ---- sizes -------------------------------------------------------------------

def test_default_is_preview_png_with_their_headers(client: httpx.Client, png: bytes) -> None:
    r = post(client, png)
    img = image_of(r)
    assert r.headers["content-type"] == "image/png" and img.mode == "RGBA"  # format=auto: transparent -> png
    assert img.width * img.height <= 250_000 and abs(img.width / img.height - W / H) < 0.01
    assert (int(r.headers["x-width"]), int(r.headers["x-height"])) == img.size
    assert r.headers["x-credits-charged"] == "0" and r.headers["x-type"] == "other"
    k = img.width / W
    assert close(foreground(r), [v * k for v in DISC], 8)


@pytest.mark.parametrize("size,megapixels", [("small", 0.25), ("regular", 0.25), ("preview", 0.25), ("medium", 1.5),
                                             ("hd", None), ("full", None), ("4k", None), ("auto", None), ("50MP", None)])
def test_sizes(client: httpx.Client, size: str, megapixels: float | None) -> None:
    big = disc_image(1600, 1200, "JPEG", quality=90)  # 1.92 MP: above medium's cap, under hd's
    img = image_of(post(client, big, size=size))
    if megapixels is None:
        assert img.size == (1600, 1200)
    else:
        assert megapixels * 1e6 * 0.98 <= img.width * img.height <= megapixels * 1e6
        assert abs(img.width / img.height - 4 / 3) < 0.01


# ---- type, format, channels ---------------------------------------------------

@pytest.mark.parametrize("kind", ["auto", "person", "product", "car", "animal", "graphic", "transportation"])
def test_types_are_accepted_and_reported(client: httpx.Client, kind: str) -> None:
    small = disc_image(200, 150, "PNG")
    r = post(client, small, type=kind, type_level="2")
    assert r.status_code == 200, r.text
    assert r.headers["x-type"] == ("other" if kind == "auto" else kind)
    assert "x-type" not in post(client, small, type=kind, type_level="none").headers


def test_format_auto_gives_jpg_when_opaque(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, size="full", bg_color="white")
    img = image_of(r)
    assert r.headers["content-type"] == "image/jpeg" and img.format == "JPEG" and img.size == (W, H)
    assert np.asarray(img)[5, 5].min() > 245


@pytest.mark.parametrize("fmt,pil,mode", [("png", "PNG", "RGBA"), ("jpg", "JPEG", "RGB"), ("webp", "WEBP", "RGBA")])
def test_formats(client: httpx.Client, png: bytes, fmt: str, pil: str, mode: str) -> None:
    img = image_of(post(client, png, size="full", format=fmt))
    assert img.format == pil and img.mode == mode and img.size == (W, H)
    arr = np.asarray(img.convert("RGBA"))
    if fmt == "jpg":  # no alpha: flattened onto white, as remove.bg does
        assert arr[5, 5, :3].min() > 245
    else:
        assert arr[5, 5, 3] < 10 and arr[H // 2, W // 2, 3] > 245


def test_zip_holds_color_jpg_and_alpha_png(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, size="full", format="zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        color = Image.open(io.BytesIO(archive.read("color.jpg")))
        alpha = Image.open(io.BytesIO(archive.read("alpha.png")))
    assert (color.format, color.mode, color.size) == ("JPEG", "RGB", (W, H))
    assert (alpha.format, alpha.mode, alpha.size) == ("PNG", "L", (W, H))
    reference = np.asarray(image_of(post(client, png, size="full", format="png")))
    assert np.abs(np.asarray(alpha).astype(int) - reference[..., 3]).max() <= 1
    centre = np.asarray(color)[H // 2, W // 2].astype(int)
    assert np.abs(centre - (230, 80, 40)).max() < 25


def test_channels_alpha(client: httpx.Client, png: bytes) -> None:
    img = image_of(post(client, png, size="full", channels="alpha"))
    assert img.mode == "L" and img.size == (W, H)
    arr = np.asarray(img)
    assert arr[H // 2, W // 2] > 245 and arr[5, 5] < 10


# ---- roi, crop, scale, position ------------------------------------------------

@pytest.mark.parametrize("roi", ["0% 0% 50% 100%", f"0px 0px {W // 2}px {H}px", f"0 0 {W // 2} {H}"])
def test_roi_keeps_nothing_outside(client: httpx.Client, png: bytes, roi: str) -> None:
    r = post(client, png, size="full", roi=roi)
    alpha = np.asarray(image_of(r))[..., 3]
    assert alpha[:, W // 2 :].max() == 0
    assert alpha[H // 2, W // 2 - 20] > 245
    left, top, right, bottom = foreground(r)
    assert right <= W // 2 and abs(left - DISC[0]) <= 8


@pytest.mark.parametrize("margin,expected", [
    ("0", (0, 0, 0, 0)), ("20px", (20, 20, 20, 20)), ("10%", (0.1, 0.1, 0.1, 0.1)),
    ("10px 30px", (10, 30, 10, 30)), ("5px 10px 15px 20px", (5, 10, 15, 20)),
])
def test_crop_with_margins(client: httpx.Client, png: bytes, subject: tuple, margin: str, expected: tuple) -> None:
    r = post(client, png, size="full", crop="true", crop_margin=margin)
    img = image_of(r)
    side = subject[2] - subject[0]
    top, right, bottom, left = (round(v * side) if isinstance(v, float) else v for v in expected)
    assert close(img.size, (side + left + right, side + top + bottom), 2)
    fl, ft, fr, fb = foreground(r)
    assert close((fl, ft), (left, top), 4)
    assert close((img.width - fr, img.height - fb), (right, bottom), 4)


def test_crop_margin_beyond_the_photo_adds_transparent_room(client: httpx.Client) -> None:
    edge = disc_image(300, 200, "PNG")  # the disc nearly touches the top and bottom
    img = image_of(post(client, edge, size="full", crop="true", crop_margin="50px"))
    alpha = np.asarray(img)[..., 3]
    assert img.height > 200 and alpha[:20].max() == 0 and alpha[-20:].max() == 0


def test_scale_centres_the_subject_at_that_size(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, size="full", scale="50%")
    img = image_of(r)
    assert img.size == (W, H)
    left, top, right, bottom = foreground(r)
    assert close((right - left, bottom - top), (H // 2, H // 2), 6)  # half the canvas's short side
    assert close(((left + right) / 2, (top + bottom) / 2), (W / 2, H / 2), 4)
    alpha = np.asarray(img)[..., 3]
    assert alpha[H // 2, W // 2] > 245 and alpha[H // 2, left - 10] < 10


@pytest.mark.parametrize("position,where", [("0%", (0, 0)), ("100%", (1, 1)), ("0% 100%", (0, 1)),
                                            ("100% 0%", (1, 0)), ("center", (0.5, 0.5))])
def test_position(client: httpx.Client, png: bytes, position: str, where: tuple) -> None:
    r = post(client, png, size="full", scale="40%", position=position)
    left, top, right, bottom = foreground(r)
    side = 0.4 * H
    assert close((right - left, bottom - top), (side, side), 6)
    assert close((left, top), ((W - side) * where[0], (H - side) * where[1]), 6)


def test_position_in_pixels_and_original(client: httpx.Client, png: bytes) -> None:
    left, top, _, _ = foreground(post(client, png, size="full", position="30px 40px"))
    assert close((left, top), (30, 40), 3)
    assert close(foreground(post(client, png, size="full", position="original")), DISC, 8)


# ---- backgrounds ---------------------------------------------------------------

@pytest.mark.parametrize("colour,rgb", [("81d4fa", (0x81, 0xD4, 0xFA)), ("#fff", (255, 255, 255)),
                                        ("green", (0, 128, 0)), ("rebeccapurple", (102, 51, 153))])
def test_bg_color(client: httpx.Client, png: bytes, colour: str, rgb: tuple) -> None:
    img = image_of(post(client, png, size="full", bg_color=colour, format="png"))
    assert img.mode == "RGB"
    assert np.abs(np.asarray(img)[5, 5].astype(int) - rgb).max() <= 1


def test_bg_color_with_alpha_stays_semi_transparent(client: httpx.Client, png: bytes) -> None:
    r = post(client, png, size="full", bg_color="81d4fa80")
    arr = np.asarray(image_of(r))
    assert r.headers["content-type"] == "image/png" and arr.shape[2] == 4
    assert abs(int(arr[5, 5, 3]) - 0x80) <= 1 and np.abs(arr[5, 5, :3].astype(int) - (0x81, 0xD4, 0xFA)).max() <= 2
    assert arr[H // 2, W // 2, 3] > 245


def two_tone(width: int, height: int) -> bytes:
    """Top half red, bottom half green."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = (220, 0, 0)
    pixels[height // 2 :] = (0, 200, 0)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_bg_image_file_covers_the_canvas_at_full_resolution(client: httpx.Client, png: bytes) -> None:
    # A portrait photo behind a landscape cutout: scaled to cover (x3.2), centred, top and bottom cut.
    r = client.post(URL, files={"image_file": ("a.png", png), "bg_image_file": ("b.png", two_tone(200, 400))},
                    data={"size": "full"})
    img = image_of(r)
    assert img.size == (W, H) and img.mode == "RGB" and r.headers["content-type"] == "image/jpeg"
    arr = np.asarray(img).astype(int)
    for y, colour in ((3, (220, 0, 0)), (H - 4, (0, 200, 0))):
        for x in (3, W - 4):
            assert np.abs(arr[y, x] - colour).max() < 20, (y, x, arr[y, x])
    # The photo's middle (its red/green border) falls at the canvas's middle row.
    assert arr[H // 2 - 30, 10, 0] > 150 and arr[H // 2 + 30, 10, 1] > 150
    assert np.abs(arr[H // 2, W // 2] - (230, 80, 40)).max() < 30  # the subject in front


def test_bg_image_file_with_crop_and_png(client: httpx.Client, png: bytes, subject: tuple) -> None:
    r = client.post(URL, files={"image_file": ("a.png", png), "bg_image_file": ("b.png", two_tone(50, 50))},
                    data={"size": "full", "crop": "true", "format": "png"})
    img = image_of(r)
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (subject[2] - subject[0], subject[3] - subject[1])


def test_add_shadow_darkens_below_the_subject(client: httpx.Client, png: bytes) -> None:
    plain = np.asarray(image_of(post(client, png, size="full")))
    shadowed = np.asarray(image_of(post(client, png, size="full", add_shadow="true")))
    y, x = DISC[3] + 8, W // 2 + 6
    assert plain[y, x, 3] < 5 and shadowed[y, x, 3] > 10 and shadowed[y, x, :3].max() < 60


@pytest.mark.parametrize("value", ["true", "false"])
def test_semitransparency_is_accepted(client: httpx.Client, png: bytes, value: str) -> None:
    alpha = np.asarray(image_of(post(client, png, size="full", semitransparency=value)))[..., 3]
    assert alpha[H // 2, W // 2] > 245 and alpha[5, 5] < 10


# ---- request and response bodies -------------------------------------------------

def test_json_body_with_base64_and_json_values(client: httpx.Client, png: bytes, subject: tuple) -> None:
    body = {"image_file_b64": "data:image/png;base64," + base64.b64encode(png).decode(), "size": "full",
            "crop": True, "type_level": 1, "bg_color": None, "format": "png"}
    img = image_of(client.post(URL, json=body))
    assert img.size == (subject[2] - subject[0], subject[3] - subject[1])


def test_urlencoded_body_with_base64_and_line_breaks(client: httpx.Client, png: bytes) -> None:
    b64 = base64.encodebytes(png).decode()  # MIME style: a line break every 76 characters
    img = image_of(client.post(URL, data={"image_file_b64": b64, "size": "full"}))
    assert img.size == (W, H)


def test_accept_json_answers_their_document(client: httpx.Client, png: bytes) -> None:
    r = client.post(URL, files={"image_file": ("a.png", png)}, data={"size": "full"}, headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()["data"]
    assert set(data) == {"result_b64", "foreground_top", "foreground_left", "foreground_width", "foreground_height"}
    img = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert img.format == "PNG" and img.size == (W, H) == (int(r.headers["x-width"]), int(r.headers["x-height"]))
    box = (data["foreground_left"], data["foreground_top"],
           data["foreground_left"] + data["foreground_width"], data["foreground_top"] + data["foreground_height"])
    assert close(box, DISC, 8) and box == foreground(r)


def test_account_document(client: httpx.Client) -> None:
    r = client.get("/v1.0/account", headers={"X-Api-Key": "any"})
    assert r.status_code == 200
    attributes = r.json()["data"]["attributes"]
    assert attributes["credits"] == {"total": 0, "subscription": 0, "payg": 0, "enterprise": 0}
    assert attributes["api"] == {"free_calls": 0, "sizes": "all"}
    assert "no credits" in attributes["note"]


# ---- refusals: remove.bg's shape, 400, never 5xx ------------------------------------

BAD_VALUES = {
    "size": ["huge", "0", "full full"], "type": ["cat", "1"], "type_level": ["3", "max"],
    "format": ["gif", "jpeg2000"], "roi": ["0 0 10", "a b c d", "-1 0 10 10", "0% 0% 200% 100%"],
    "crop": ["maybe", "2"], "crop_margin": ["lots", "501px", "51%", "1 2 3", "-5px"],
    "scale": ["5%", "101%", "50", "big"], "position": ["left", "101%", "1 2 3", "-5%"],
    "channels": ["rgb", "a"], "bg_color": ["blurple", "#12345", "rgb(1,2)", "rgb(999,0,0)", "hsl(1000,200%,50%)"],
    "add_shadow": ["perhaps"], "semitransparency": ["sometimes"],
}


@pytest.mark.parametrize("name,value", [(n, v) for n, values in BAD_VALUES.items() for v in values])
def test_bad_value_of_every_parameter(client: httpx.Client, name: str, value: str) -> None:
    small = disc_image(160, 120, "PNG")
    r = post(client, small, **{name: value})
    detail = assert_error(r, "roi_exceeds_bounds" if value == "0% 0% 200% 100%" else f"invalid_{name}")
    assert name in detail or "roi" in detail


FUZZ_PIECES = ["", " ", "%", "px", "-", "0", "1", "100", "101", "1e9", "NaN", "inf", "-1", "50%", "10px", ".5",
               "99999999999999999999", "original", "center", "true", "auto", "full", "zip", "alpha", "#fff",
               "rgb(999,0,0)", "\U0001f4a5", "\x00", "null", "{}", "a" * 300, "0% 0% 100% 100%", "0 0 0 0", "\u202e"]


def test_random_values_of_every_parameter_never_fail_the_server(client: httpx.Client) -> None:
    """Seeded combinations of odd values: each answer is a cutout or a 400 in their shape."""
    import random

    from bgclear.server.removebg_params import KNOWN

    rng = random.Random(12)
    tiny = disc_image(64, 48, "PNG")
    names = [k for k in KNOWN if not k.startswith(("image_", "bg_image_"))]
    for _ in range(120):
        fields = {rng.choice(names): " ".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 4)))
                  for _ in range(rng.randint(1, 3))}
        r = post(client, tiny, **fields)
        assert r.status_code in (200, 400), (fields, r.status_code, r.text[:300])
        if r.status_code == 400:
            assert r.json()["errors"][0]["code"], fields


def test_roi_errors_that_need_the_image(client: httpx.Client) -> None:
    small = disc_image(160, 120, "PNG")
    assert_error(post(client, small, roi="0 0 200px 100px"), "roi_exceeds_bounds")
    assert_error(post(client, small, roi="50 50 50 100"), "roi_region_empty")
    assert_error(post(client, small, roi="0 0 5 5"), "unknown_foreground")  # nothing of the disc inside


@pytest.mark.parametrize("case", ["none", "two", "two-bg", "text-file", "bad-b64", "json-array", "json-nested",
                                  "json-broken", "content-type", "url-off", "bg-url-off"])
def test_malformed_requests(client: httpx.Client, png: bytes, case: str) -> None:
    b64 = base64.b64encode(png).decode()
    expected = {
        "none": ("missing_source", lambda: client.post(URL, data={"size": "full"})),
        "two": ("multiple_sources", lambda: client.post(URL, files={"image_file": ("a", png)}, data={"image_file_b64": b64})),
        "two-bg": ("multiple_bg_sources", lambda: client.post(
            URL, files={"image_file": ("a", png), "bg_image_file": ("b", png)}, data={"bg_color": "red"})),
        "text-file": ("invalid_image_file", lambda: client.post(URL, json={"image_file": b64})),
        "bad-b64": ("failed_to_read_image", lambda: client.post(URL, data={"image_file_b64": "not base64!"})),
        "json-array": ("bad_request", lambda: client.post(URL, json=[1, 2])),
        "json-nested": ("invalid_size", lambda: client.post(URL, json={"image_file_b64": b64, "size": {"a": 1}})),
        "json-broken": ("bad_request", lambda: client.post(URL, content=b"{", headers={"content-type": "application/json"})),
        "content-type": ("invalid_content_type", lambda: client.post(URL, content=png, headers={"content-type": "image/png"})),
        "url-off": ("invalid_image_url", lambda: client.post(URL, data={"image_url": "http://127.0.0.1:9/a.png"})),
        "bg-url-off": ("invalid_bg_image_url", lambda: client.post(
            URL, files={"image_file": ("a", png)}, data={"bg_image_url": "http://127.0.0.1:9/b.png"})),
    }[case]
    detail = assert_error(expected[1](), expected[0])
    if case.endswith("url-off"):
        assert "--allow-url-fetch" in detail


@pytest.mark.parametrize("data,code", [
    (b"", "failed_to_read_image"),
    (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "invalid_file_type"),
    (disc_image(W, H, "PNG")[:300], "failed_to_read_image"),
    (b"\xff\xd8\xff" + bytes(10_500_000), "file_too_large"),
])
def test_unusable_files(client: httpx.Client, data: bytes, code: str) -> None:
    assert_error(post(client, data), code)
    if data:
        assert_error(client.post(URL, data={"image_file_b64": base64.b64encode(data).decode()}), code)


def test_too_many_pixels_and_bad_background(client: httpx.Client, png: bytes) -> None:
    buf = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buf, "PNG")  # 49 MP in a few kB
    assert "7000x7000" in assert_error(post(client, buf.getvalue()), "resolution_too_high")
    r = client.post(URL, files={"image_file": ("a", png), "bg_image_file": ("b", b"not an image at all")})
    assert_error(r, "invalid_file_type")


def test_unknown_paths_under_v1_0_answer_their_shape(client: httpx.Client) -> None:
    assert "/v1.0/removebg" in assert_error(client.get("/v1.0/nothing"), "not_found", 404)
    assert_error(client.get(URL), "method_not_allowed", 405)


def test_the_server_still_serves_after_all_that(client: httpx.Client, png: bytes, server) -> None:
    assert image_of(post(client, png, size="full")).size == (W, H)
    assert "Traceback" not in server.log()


# ---- documentation -------------------------------------------------------------

def test_openapi_documents_both_endpoints(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1.0/removebg"]["post"]
    content = op["requestBody"]["content"]
    assert {"multipart/form-data", "application/x-www-form-urlencoded", "application/json"} <= set(content)
    form = content["multipart/form-data"]["schema"]["properties"]
    assert {"image_file", "image_file_b64", "image_url", "size", "type", "type_level", "format", "roi", "crop",
            "crop_margin", "scale", "position", "channels", "bg_color", "bg_image_file", "bg_image_url",
            "add_shadow", "semitransparency"} <= set(form)
    assert form["bg_image_file"]["format"] == "binary"
    ok = op["responses"]["200"]
    assert {"image/png", "image/jpeg", "application/zip", "application/json"} <= set(ok["content"])
    assert "X-Credits-Charged" in ok["description"]
    assert "invalid_size" in op["responses"]["400"]["content"]["application/json"]["examples"]
    account = schema["paths"]["/v1.0/account"]["get"]
    assert account["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Account")
    assert {"RemoveBgJsonResponse", "RemoveBgErrors", "Account"} <= set(schema["components"]["schemas"])
    json.dumps(schema)


# ---- keys and rate limit (server/auth.py, server/ratelimit.py) in remove.bg's shape -----

def test_keys_and_rate_limit_answer_in_their_shape() -> None:
    """In-process app without a model: the guard answers before any cutout is made."""
    from fastapi.testclient import TestClient

    from bgclear.server import ServerSettings, create_app
    from bgclear.server.auth import KeyStore
    from bgclear.server.ratelimit import RateLimit

    settings = ServerSettings(api_keys=KeyStore.from_lines(["key-one"]), rate_limit=RateLimit.parse("1/min", 1))
    client = TestClient(create_app(settings))  # no lifespan: no model is loaded
    r = client.get("/v1.0/account")
    assert_error(r, "missing_api_key", 403)
    assert r.json()["errors"][0]["title"] == "Authentication failed"
    assert_error(client.post(URL, data={"size": "full"}, headers={"X-Api-Key": "wrong"}), "invalid_api_key", 403)
    assert client.get("/v1.0/account", headers={"X-Api-Key": "key-one"}).status_code == 200
    r = client.get("/v1.0/account", headers={"Authorization": "Bearer key-one"})
    assert_error(r, "rate_limited", 429)
    assert r.json()["errors"][0]["title"] == "Rate limit exceeded"
    assert int(r.headers["retry-after"]) > 0 and r.headers["x-ratelimit-limit"] and "x-ratelimit-reset" in r.headers
    # The other API keeps its own shape for the same refusals.
    assert client.post("/v1/remove", headers={"X-Api-Key": "wrong"}).json()["error"]["code"] == "invalid_api_key"
