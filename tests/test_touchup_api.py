"""Keep / remove points, boxes and edit handles over HTTP, against real server processes.

The photo is the sample cat beside its mirror image (902x300): the automatic cutout
keeps both cats, a remove click on the right one takes it out. The edit store's
bounds are checked in-process with a fake clock, and end to end on a server started
with a short time to live and a small memory bound.
"""

from __future__ import annotations

import base64
import io
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SAMPLE  # noqa: E402
from server_fixtures import disc_image, served  # noqa: E402

from bgclear.io.decode import DecodedImage  # noqa: E402
from bgclear.pipeline import Prepared  # noqa: E402
from bgclear.server.edits import EditStore, prepared_nbytes  # noqa: E402

W, H = 902, 300
HALF = W // 2
RIGHT_CAT = (676, 150)
LEFT_CAT = (225, 150)


def two_cats_png() -> bytes:
    cat = np.asarray(Image.open(SAMPLE).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(np.hstack([cat, cat[:, ::-1]])).save(buf, "PNG")
    return buf.getvalue()


def halves(response: httpx.Response) -> tuple[float, float]:
    """Mean alpha (0..1) of the left and right halves of a PNG answer."""
    assert response.status_code == 200, response.text
    alpha = np.asarray(Image.open(io.BytesIO(response.content)))[..., 3] / 255.0
    assert alpha.shape == (H, W)
    return float(alpha[:, :HALF].mean()), float(alpha[:, HALF:].mean())


def pixels(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


@pytest.fixture(scope="module")
def photo() -> bytes:
    return two_cats_png()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    with served(tmp_path_factory.mktemp("touchup") / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def automatic(client: httpx.Client, photo: bytes) -> tuple[float, float]:
    left, right = halves(client.post("/v1/remove", files={"image_file": ("p.png", photo)}))
    assert left > 0.5 and right > 0.5  # both cats kept: the case a click fixes
    return left, right


@pytest.fixture(scope="module")
def dropped(client: httpx.Client, photo: bytes) -> httpx.Response:
    """The full path with a remove click on the right cat, as form fields, holding the image (edit=true)."""
    return client.post("/v1/remove", files={"image_file": ("p.png", photo)},
                       data={"drop": "676,150", "keep": "225,150", "edit": "true"})


# ---- points and boxes on POST /v1/remove ------------------------------------------

def test_a_remove_click_as_form_fields_takes_the_right_cat_out(dropped, automatic) -> None:
    left, right = halves(dropped)
    assert right < 0.5 * automatic[1]
    assert left > 0.9 * automatic[0]
    assert dropped.headers["X-Edit-Id"] and float(dropped.headers["X-Edit-Expires-In"]) > 0


def test_query_json_and_repeated_fields_say_the_same(client: httpx.Client, photo: bytes, dropped) -> None:
    by_query = client.post("/v1/remove", params=[("drop", "676,150"), ("keep", "225,150")],
                           files={"image_file": ("p.png", photo)})
    by_json = client.post("/v1/remove", params={"drop": "[[676, 150]]", "keep": "[225,150]"}, content=photo)
    assert np.array_equal(pixels(by_query), pixels(dropped))
    assert np.array_equal(pixels(by_json), pixels(dropped))
    assert "X-Edit-Id" not in by_query.headers  # only edit=true holds the image


def test_a_box_around_the_left_cat_clears_the_right(client: httpx.Client, photo: bytes, automatic) -> None:
    left, right = halves(client.post("/v1/remove", params={"box": "0,0,451,300"}, files={"image_file": ("p.png", photo)}))
    assert right < 0.01 and left > 0.9 * automatic[0]


def test_removebg_roi_around_one_cat_chooses_it(client: httpx.Client, photo: bytes, automatic) -> None:
    r = client.post("/v1.0/removebg", files={"image_file": ("p.png", photo)},
                    data={"roi": "460px 0px 902px 300px", "size": "full"})
    left, right = halves(r)
    assert left == 0.0 and right > 0.9 * automatic[1]


# ---- the edit handle ----------------------------------------------------------------

def test_the_edit_path_answers_what_the_full_path_answers(client: httpx.Client, photo: bytes, dropped) -> None:
    handle = dropped.headers["X-Edit-Id"]
    same = client.post(f"/v1/remove/{handle}", params=[("drop", "676,150"), ("keep", "225,150")])
    assert same.headers["X-Edit-Id"] == handle
    assert np.array_equal(pixels(same), pixels(dropped))
    assert "decode" not in same.headers["Server-Timing"]  # no image came, none was decoded
    # One more click, as a urlencoded form, against the full path with the same three points.
    points = {"drop": ["676,150", "890,20"], "keep": ["225,150"]}
    edited = client.post(f"/v1/remove/{handle}", data=points, params={"format": "json"})
    full = client.post("/v1/remove", files={"image_file": ("p.png", photo)}, data=points)
    body = edited.json()
    assert body["edit_id"] == handle and body["width"] == W
    assert np.array_equal(pixels(full), np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"])))))


def test_edit_options_and_preview(client: httpx.Client, dropped) -> None:
    handle = dropped.headers["X-Edit-Id"]
    r = client.post(f"/v1/remove/{handle}", files={"drop": (None, "676,150")}, data={"size": "preview", "bg_color": "white",
                                                                                     "format": "jpg"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (W, H)  # already under the preview's 1000 px


def test_an_unknown_or_forgotten_handle_is_edit_expired(client: httpx.Client, photo: bytes) -> None:
    assert_error(client.post("/v1/remove/not-a-handle", params={"keep": "1,1"}), 404, "edit_expired", "send the image again")
    r = client.post("/v1/remove", params={"edit": "true", "size": "preview"}, content=photo)
    handle = r.headers["X-Edit-Id"]
    assert client.delete(f"/v1/remove/{handle}").status_code == 204
    assert_error(client.post(f"/v1/remove/{handle}"), 404, "edit_expired")
    assert client.delete(f"/v1/remove/{handle}").status_code == 204  # forgetting twice is fine


# ---- bad input: a clear 4xx, and the server keeps serving ------------------------------

BAD_POINTS = {
    "outside": ({"keep": "5000,10"}, "keep point 1 (5000, 10) is outside the 902x300 image"),
    "negative": ({"drop": "-1,10"}, "outside"),
    "nan": ({"keep": "nan,10"}, "'nan' is not a number"),
    "infinite-json": ({"keep": "[[1e999, 5]]"}, "finite numbers"),
    "nan-json": ({"drop": "[NaN, 5]"}, "NaN is not a number"),
    "unparsable": ({"keep": "12;40"}, "has 1 comma-separated value"),
    "three-numbers": ({"keep": "1,2,3"}, "not 2"),
    "zero-area-box": ({"box": "10,10,10,200"}, "has no area"),
    "box-outside": ({"box": "2000,10,2100,200"}, "no area inside the 902x300 image"),
    "two-boxes": ({"box": ["0,0,10,10", "0,0,20,20"]}, "2 boxes given"),
    "bad-edit-flag": ({"edit": "perhaps"}, "edit"),
}


@pytest.mark.parametrize("case", list(BAD_POINTS))
def test_bad_points_are_refused_with_a_reason(client: httpx.Client, photo: bytes, dropped, case: str) -> None:
    fields, words = BAD_POINTS[case]
    assert_error(client.post("/v1/remove", data=fields, files={"image_file": ("p.png", photo)}), 422, "invalid_option", words)
    if case != "bad-edit-flag":
        assert_error(client.post(f"/v1/remove/{dropped.headers['X-Edit-Id']}", data=fields), 422, "invalid_option", words)


def test_thousands_of_points(client: httpx.Client, photo: bytes, dropped) -> None:
    many = [("keep", f"{i % W},{i % H}") for i in range(3000)]
    started = time.perf_counter()
    r = client.post("/v1/remove", files=[("image_file", ("p.png", photo)), *[(k, (None, v)) for k, v in many]])
    assert_error(r, 422, "invalid_option", "at most 64")
    assert_error(client.post(f"/v1/remove/{dropped.headers['X-Edit-Id']}", data={"keep": [v for _, v in many]}),
                 422, "invalid_option", "at most 64")
    as_json = "[" + ",".join(f"[{i},{i}]" for i in range(2000)) + "]"
    r = client.post("/v1/remove", files={"image_file": ("p.png", photo)}, data={"keep": as_json})
    assert r.status_code in (400, 422) and r.json()["error"]["code"] in ("bad_request", "invalid_option")
    assert time.perf_counter() - started < 30  # refused, never run


def test_points_on_an_image_that_does_not_decode(client: httpx.Client, photo: bytes) -> None:
    broken = photo[: len(photo) // 3]
    assert_error(client.post("/v1/remove", data={"drop": "676,150", "edit": "true"}, files={"image_file": ("p.png", broken)}),
                 422, "unreadable")


def test_the_edit_path_takes_no_image(client: httpx.Client, photo: bytes, dropped) -> None:
    handle = dropped.headers["X-Edit-Id"]
    assert_error(client.post(f"/v1/remove/{handle}", files={"image_file": ("p.png", photo[:1000])}), 400, "bad_request", "no image")
    assert_error(client.post(f"/v1/remove/{handle}", content=photo[:1000], headers={"Content-Type": "image/png"}), 400,
                 "bad_request")


def test_the_server_kept_serving(client: httpx.Client, photo: bytes, automatic) -> None:
    assert client.get("/healthz").json()["status"] == "ready"
    assert halves(client.post("/v1/remove", content=photo, params={"drop": "676,150"}))[1] < 0.5 * automatic[1]


def test_openapi_documents_points_and_the_edit_path(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    remove = schema["paths"]["/v1/remove"]["post"]
    params = {p["name"]: p for p in remove["parameters"]}
    assert params["keep"]["schema"]["type"] == "array" and params["keep"]["example"] == ["812,400", "300,620"]
    assert params["box"]["example"] == "10,10,900,1300" and "edit" in params
    form = remove["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"keep", "drop", "box", "edit"} <= set(form)
    edit = schema["paths"]["/v1/remove/{edit_id}"]
    assert "edit_expired" in edit["post"]["responses"]["404"]["content"]["application/json"]["examples"]
    assert "edit" not in {p["name"] for p in edit["post"]["parameters"]} and "delete" in edit


# ---- bounds: time to live, bytes, entries ------------------------------------------------

def prepared_of(side: int) -> Prepared:
    return Prepared(decoded=DecodedImage(np.zeros((side, side, 3), np.uint8)), probability=np.zeros((10, 10), np.float32))


def test_edit_store_bounds_with_a_fake_clock() -> None:
    now = [0.0]
    item = prepared_nbytes(prepared_of(100))  # 30,000 + 400 bytes
    store = EditStore(ttl=10, max_bytes=3 * item, max_entries=10, clock=lambda: now[0])
    a, b, c = (store.put(prepared_of(100)) for _ in range(3))
    assert len(store) == 3 and store.nbytes == 3 * item
    now[0] = 8.0
    assert store.get(a) is not None  # used: lives 10 s from now; b and c do not
    now[0] = 12.0
    assert store.sweep() == 2 and store.get(b) is None and store.get(a) is not None
    d, e = store.put(prepared_of(100)), store.put(prepared_of(100))
    f = store.put(prepared_of(100))  # a fourth: the least recently used (a) goes
    assert store.get(a) is None and all(store.get(h) is not None for h in (d, e, f)) and store.nbytes == 3 * item
    assert store.put(prepared_of(200)) is None  # larger than the whole bound: not held, nothing evicted
    assert len(store) == 3
    few = EditStore(ttl=10, max_bytes=10 * item, max_entries=2, clock=lambda: now[0])
    g, h, i = (few.put(prepared_of(100)) for _ in range(3))
    assert few.get(g) is None and few.get(h) is not None and len(few) == 2
    assert EditStore(ttl=0).put(prepared_of(10)) is None  # off
    assert len({store.put(prepared_of(1)) for _ in range(50)}) == 50  # handles do not repeat


def test_expiry_eviction_and_the_fallback_against_a_real_server(tmp_path: Path, photo: bytes) -> None:
    # 640x480 images hold ~1.3 MB each (pixels + segmentation): 3 MiB keeps two.
    with served(tmp_path / "server.log", "--edit-ttl", "2", "--edit-memory", "3", "--edit-entries", "8") as srv, \
            httpx.Client(base_url=srv.url, timeout=120) as client:
        handles = []
        for _ in range(3):
            r = client.post("/v1/remove", params={"edit": "true", "size": "preview"}, content=disc_image(640, 480))
            handles.append(r.headers["X-Edit-Id"])
        health = client.get("/healthz").json()
        assert health["edits"] == 2 and 0 < health["edit_bytes"] <= health["edit_max_bytes"] == 3 * 2**20
        assert_error(client.post(f"/v1/remove/{handles[0]}", params={"size": "preview"}), 404, "edit_expired")
        assert client.post(f"/v1/remove/{handles[2]}", params={"size": "preview"}).status_code == 200
        too_big = client.post("/v1/remove", params={"edit": "true", "size": "preview"}, content=disc_image(1400, 1000))
        assert too_big.status_code == 200 and "X-Edit-Id" not in too_big.headers  # over the bound alone: not held

        # The page's flow: a handle, a click; then the handle expires and the next click resends the image.
        first = client.post("/v1/remove", params={"edit": "true"}, content=photo)
        handle = first.headers["X-Edit-Id"]
        assert client.post(f"/v1/remove/{handle}", params={"drop": "676,150"}).status_code == 200
        time.sleep(3.5)  # past the time to live and a sweep (every ttl / 4)
        assert client.get("/healthz").json()["edits"] == 0  # dropped by the sweeper, with no request touching it
        points = [("drop", "676,150"), ("keep", "225,150")]
        assert_error(client.post(f"/v1/remove/{handle}", params=points), 404, "edit_expired")
        again = client.post("/v1/remove", params=[*points, ("edit", "true")], content=photo)
        assert again.headers["X-Edit-Id"] != handle
        fresh = client.post("/v1/remove", params=points, content=photo)
        assert np.array_equal(pixels(again), pixels(fresh))
        assert halves(again)[1] < 0.5 * halves(first)[1]
