"""Third-party remove.bg clients, unmodified, against a real ``bgclear serve``; and remove.bg's
own curl examples, run with curl.

- PyPI ``removebg`` 0.4 and ``remove-bg-api`` 0.2.1: pointed here by setting their module's
  endpoint constant (``API_ENDPOINT`` / ``API_URL``).
- npm ``remove.bg`` 1.3.0 (in tests/.node, installed by scripts/test.sh): its endpoint is a
  module-private constant, so a ``node --require`` preload (tests/node/redirect_removebg.js) sends
  its HTTPS requests for api.remove.bg to this server, one layer below the library.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image, served  # noqa: E402
from url_fixtures import http_server  # noqa: E402

HERE = Path(__file__).parent
NODE_PACKAGE = HERE / ".node" / "node_modules" / "remove.bg"
W, H = 640, 480
KEY = "INSERT_YOUR_API_KEY_HERE"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with served(tmp_path_factory.mktemp("clients") / "server.log", "--allow-url-fetch", "127.0.0.1") as proc:
        yield proc


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "file.jpg"
    path.write_bytes(disc_image(W, H, "JPEG", quality=92))
    return path


@pytest.fixture(scope="module")
def photo_url(photo: Path):
    with http_server({"/example.jpg": photo.read_bytes()}) as (base, _):
        yield f"{base}/example.jpg"


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_cutout(img: Image.Image, size: tuple[int, int] | None = None) -> None:
    """A transparent disc cutout: opaque centre, clear corner."""
    assert img.mode == "RGBA"
    if size:
        assert img.size == size
    arr = np.asarray(img)
    assert arr[img.height // 2, img.width // 2, 3] > 245 and arr[3, 3, 3] < 10


def assert_preview(img: Image.Image) -> None:
    assert img.width * img.height <= 250_000 and abs(img.width / img.height - W / H) < 0.01


# ---- PyPI: removebg 0.4 ---------------------------------------------------------

@pytest.fixture
def removebg(server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    module = pytest.importorskip("removebg.removebg", reason="scripts/test.sh installs removebg==0.4")
    monkeypatch.setattr(module, "API_ENDPOINT", f"{server.url}/v1.0/removebg")
    return module.RemoveBg(KEY, str(tmp_path / "removebg-errors.log"))


def test_pypi_removebg_file_base64_and_url(removebg, photo: Path, photo_url: str, tmp_path: Path) -> None:
    local = tmp_path / "file.jpg"
    shutil.copy(photo, local)
    removebg.remove_background_from_img_file(str(local))  # size "regular" by default: their preview
    img = opened(Path(f"{local}_no_bg.png").read_bytes())
    assert_preview(img)
    assert_cutout(img)
    b64 = base64.b64encode(photo.read_bytes()).decode()
    removebg.remove_background_from_base64_img(b64, size="full", new_file_name=str(tmp_path / "b64.png"))
    assert_cutout(opened((tmp_path / "b64.png").read_bytes()), (W, H))
    removebg.remove_background_from_img_url(photo_url, size="4k", new_file_name=str(tmp_path / "url.png"), bg_color="green")
    img = opened((tmp_path / "url.png").read_bytes())
    assert img.format == "JPEG" and img.size == (W, H)  # opaque: format auto gives a JPEG (under their .png name)
    assert np.abs(np.asarray(img)[3, 3].astype(int) - (0, 128, 0)).max() < 12


def test_pypi_removebg_error_is_their_http_400(removebg, photo: Path, tmp_path: Path) -> None:
    requests = pytest.importorskip("requests")
    with pytest.raises(requests.HTTPError) as caught:
        removebg.remove_background_from_img_file(str(photo), size="enormous")
    response = caught.value.response
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_size"


# ---- PyPI: remove-bg-api 0.2.1 (reads /account, X-Credits-Charged) -----------------

@pytest.fixture
def remove_bg_api(server, monkeypatch: pytest.MonkeyPatch):
    module = pytest.importorskip("remove_bg_api", reason="scripts/test.sh installs remove-bg-api==0.2.1")
    monkeypatch.setattr(module, "API_URL", f"{server.url}/v1.0")
    return module


def test_pypi_remove_bg_api_account_and_removals(remove_bg_api, photo: Path, photo_url: str) -> None:
    client = remove_bg_api.RemoveBg(KEY)  # reads GET /v1.0/account on construction
    assert client.account.balance() == 0 and client.account.free_api_calls() == 0
    assert client.account.get_balance_dict() == {"total": 0, "subscription": 0, "payg": 0, "enterprise": 0}
    full = opened(client.remove_bg_file(str(photo), size="full"))  # subtracts int(X-Credits-Charged)
    assert_cutout(full, (W, H))
    assert client.account.balance() == 0
    assert_preview(opened(client.remove_bg_base64(base64.b64encode(photo.read_bytes()).decode())))
    assert_cutout(opened(client.remove_bg_url(photo_url, size="auto")), (W, H))
    cropped = client.remove_bg_file(str(photo), data={"size": "full", "crop": "true", "crop_margin": "10px",
                                                      "format": "zip"})
    with zipfile.ZipFile(io.BytesIO(cropped)) as archive:
        alpha = opened(archive.read("alpha.png"))
        colour = opened(archive.read("color.jpg"))
    assert alpha.mode == "L" and colour.mode == "RGB" and alpha.size == colour.size
    assert alpha.width < W / 2 + 40 and np.asarray(alpha)[:5].max() < 10  # cropped: a 10 px clear margin


def test_pypi_remove_bg_api_errors_are_its_exceptions(remove_bg_api, photo: Path) -> None:
    client = remove_bg_api.RemoveBg(KEY)
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode400):
        client.remove_bg_file(str(photo), data={"size": "full", "roi": "0 0 0 0"})
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode400):
        client.remove_bg_bytes(b"not an image")


# ---- npm: remove.bg 1.3.0 -----------------------------------------------------------

def node(server, call: str, options: dict) -> dict:
    if not NODE_PACKAGE.exists() or shutil.which("node") is None:
        pytest.skip("scripts/test.sh installs the npm package remove.bg@1.3.0 into tests/.node (needs node)")
    run = subprocess.run(
        ["node", "--require", str(HERE / "node" / "redirect_removebg.js"), str(HERE / "node" / "removebg_client.js"),
         json.dumps({"call": call, "options": {"apiKey": KEY, **options}})],
        capture_output=True, text=True, timeout=120, env={**os.environ, "BGCLEAR_REMOVEBG_BASE": server.url},
    )
    assert run.returncode == 0, run.stderr
    assert "redirected POST https://api.remove.bg/v1.0/removebg" in run.stderr  # the library aimed at remove.bg
    return json.loads(run.stdout)


def test_npm_remove_bg_from_file(server, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "from-file.png"
    result = node(server, "File", {"path": str(photo), "size": "regular", "type": "auto", "outputFile": str(out)})
    assert result["ok"], result
    meta = result["meta"]
    img = opened(out.read_bytes())
    assert_preview(img)
    assert_cutout(img)
    assert (meta["creditsCharged"], meta["detectedType"]) == ("0", "other")
    assert (int(meta["resultWidth"]), int(meta["resultHeight"])) == img.size


def test_npm_remove_bg_with_crop_scale_and_colour(server, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "crop-scale.png"
    result = node(server, "File", {"path": str(photo), "size": "full", "type": "product", "crop": True,
                                   "crop_margin": "20px", "scale": "50%", "position": "center",
                                   "bg_color": "81d4fa", "outputFile": str(out)})
    assert result["ok"], result
    img = opened(out.read_bytes())
    assert img.mode == "RGB" and result["meta"]["detectedType"] == "product"
    assert np.abs(np.asarray(img)[2, 2].astype(int) - (0x81, 0xD4, 0xFA)).max() < 12


def test_npm_remove_bg_from_base64_and_url(server, photo: Path, photo_url: str) -> None:
    b64 = base64.b64encode(photo.read_bytes()).decode()
    result = node(server, "Base64", {"base64img": b64, "size": "full"})
    assert result["ok"], result
    assert (result["meta"]["resultWidth"], result["meta"]["resultHeight"]) == (str(W), str(H))
    result = node(server, "Url", {"url": photo_url, "size": "hd", "channels": "alpha"})
    assert result["ok"], result


def test_npm_remove_bg_rejects_with_their_errors(server, photo: Path) -> None:
    result = node(server, "File", {"path": str(photo), "size": "gigantic"})
    assert not result["ok"]
    assert result["errors"][0]["code"] == "invalid_size" and result["errors"][0]["title"]


# ---- remove.bg's own curl examples -----------------------------------------------------

def curl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    return subprocess.run(["curl", "-sS", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_their_curl_examples(server, photo: Path, photo_url: str, tmp_path: Path) -> None:
    endpoint = f"{server.url}/v1.0/removebg"
    run = curl("-H", f"X-API-Key: {KEY}", "-F", f"image_file=@{photo}", "-F", "size=auto", "-f", endpoint,
               "-o", "no-bg.png", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert_cutout(opened((tmp_path / "no-bg.png").read_bytes()), (W, H))
    run = curl("-H", f"X-API-Key: {KEY}", "-F", f"image_url={photo_url}", "-F", "size=auto", "-f", endpoint,
               "-o", "no-bg-url.png", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert_cutout(opened((tmp_path / "no-bg-url.png").read_bytes()), (W, H))
    run = curl("-H", f"X-API-Key: {KEY}", "-f", f"{server.url}/v1.0/account", cwd=tmp_path)
    assert run.returncode == 0 and json.loads(run.stdout)["data"]["attributes"]["credits"]["total"] == 0
    run = curl("-H", f"X-API-Key: {KEY}", "-F", f"image_file=@{photo}", "-F", "size=nonsense", "-f", endpoint,
               "-o", "never.png", cwd=tmp_path)
    assert run.returncode == 22 and not (tmp_path / "never.png").exists()  # -f: an HTTP error, no file


def test_their_zip_example(server, photo: Path, tmp_path: Path) -> None:
    run = curl("-H", f"X-API-Key: {KEY}", "-F", f"image_file=@{photo}", "-F", "size=auto", "-F", "format=zip",
               "-f", f"{server.url}/v1.0/removebg", "-o", "no-bg.zip", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    if shutil.which("unzip"):
        assert subprocess.run(["unzip", "-q", "no-bg.zip"], cwd=tmp_path).returncode == 0
    else:
        zipfile.ZipFile(tmp_path / "no-bg.zip").extractall(tmp_path)
    # Their next step, `convert color.jpg alpha.png -compose CopyOpacity -composite no-bg.png`, in numpy:
    colour = np.asarray(Image.open(tmp_path / "color.jpg"))
    alpha = np.asarray(Image.open(tmp_path / "alpha.png"))
    composed = Image.fromarray(np.dstack([colour, alpha]))
    assert_cutout(composed, (W, H))
