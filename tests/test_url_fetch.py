"""URL fetching for image_url / bg_image_url: off by default, an allow-list, no private
addresses unless listed, pinned connections, same-host redirects, size and time bounds.

Every network request here goes to a local http.server on 127.0.0.1; addresses elsewhere
are only checked by the policy, never connected to.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image, served  # noqa: E402
from url_fixtures import http_server  # noqa: E402

from bgclear.server.url_fetch import AllowList, FetchFailed, FetchRefused, check_url, fetch  # noqa: E402

DISC = disc_image(320, 240, "PNG")
MB = 1_000_000


@pytest.fixture(scope="module")
def site():
    with http_server({"/disc.png": DISC}) as (base, hosts):
        yield base, hosts


def allow(text: str) -> AllowList:
    return AllowList.parse(text)


# ---- the policy ----------------------------------------------------------------

def test_allow_list_parsing() -> None:
    a = allow(" Images.Example.com ,10.0.0.5, 192.168.1.0/24,[::1],*")
    assert a.names == {"images.example.com", "10.0.0.5", "::1"} and a.any_public and a.enabled
    assert not AllowList.parse(None).enabled and not AllowList.parse("").enabled
    for bad in ("http://x.com", "a b", "10.0.0.0/33", "x..y"):
        with pytest.raises(ValueError):
            AllowList.parse(bad)


@pytest.mark.parametrize("url,why", [
    ("ftp://127.0.0.1/a.png", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:pw@127.0.0.1/a.png", "user name"),
    ("http://other.example/a.png", "not on this server's"),
    ("http://127.0.0.2/a.png", "not on this server's"),
    ("http:///a.png", "no host"),
    ("http://127.0.0.1:99999/a.png", "cannot be parsed"),
])
def test_urls_refused_before_any_connection(url: str, why: str) -> None:
    with pytest.raises(FetchRefused, match=why):
        check_url(url, allow("127.0.0.1"))


def test_fetching_is_off_without_a_list() -> None:
    with pytest.raises(FetchRefused, match="--allow-url-fetch"):
        fetch("http://127.0.0.1/a.png", AllowList(), MB)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1",
                                     "::ffff:127.0.0.1", "::ffff:169.254.169.254"])
def test_non_public_addresses_are_refused_even_for_any_host(address: str) -> None:
    with pytest.raises(FetchRefused, match="address"):
        allow("*").check_address(ipaddress.ip_address(address))


def test_public_and_listed_addresses_pass() -> None:
    allow("*").check_address(ipaddress.ip_address("8.8.8.8"))  # checked only; nothing connects to it
    allow("*").check_address(ipaddress.ip_address("2001:4860:4860::8888"))
    allow("10.0.0.0/8").check_address(ipaddress.ip_address("10.1.2.3"))
    assert allow("10.0.0.0/8").allows_host("10.1.2.3") and not allow("10.0.0.0/8").allows_host("11.0.0.1")


# ---- fetching from a real local server -------------------------------------------

def test_fetch_from_a_listed_address(site) -> None:
    base, _ = site
    assert fetch(f"{base}/disc.png", allow("127.0.0.1"), MB) == DISC
    assert fetch(f"{base}/disc.png", allow("127.0.0.0/8"), MB) == DISC


def test_a_listed_name_that_resolves_to_loopback_is_refused(site) -> None:
    base, _ = site
    with pytest.raises(FetchRefused, match="loopback"):
        fetch(base.replace("127.0.0.1", "localhost") + "/disc.png", allow("localhost"), MB)


def test_the_connection_goes_to_the_address_that_was_checked(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name nothing else can resolve: only our one lookup answers it, and the
    request still carries the name in its Host header."""
    base, hosts = site
    port = int(base.rsplit(":", 1)[1])
    lookups: list[str] = []
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "images.test":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert fetch(f"http://images.test:{port}/disc.png", allow("images.test,127.0.0.1"), MB) == DISC
    assert lookups == ["images.test"] and hosts[-1] == f"images.test:{port}"
    with pytest.raises(FetchRefused, match="loopback"):  # the name alone does not open loopback
        fetch(f"http://images.test:{port}/disc.png", allow("images.test"), MB)


def test_redirects_on_the_same_host_only(site) -> None:
    base, _ = site
    listed = allow("127.0.0.1,localhost")
    assert fetch(f"{base}/redirect-same", listed, MB) == DISC
    with pytest.raises(FetchFailed, match="another host"):
        fetch(f"{base}/redirect-other", listed, MB)
    with pytest.raises(FetchFailed, match="redirects"):
        fetch(f"{base}/loop", listed, MB)


def test_size_bounds(site) -> None:
    base, _ = site
    with pytest.raises(FetchFailed, match="50.0 MB"):
        fetch(f"{base}/big", allow("127.0.0.1"), MB)
    with pytest.raises(FetchFailed, match="larger than the limit"):
        fetch(f"{base}/big-stream", allow("127.0.0.1"), MB)
    with pytest.raises(FetchFailed, match="the limit is"):
        fetch(f"{base}/disc.png", allow("127.0.0.1"), len(DISC) - 1)


def test_time_bound(site) -> None:
    base, _ = site
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="too long"):
        fetch(f"{base}/slow", allow("127.0.0.1"), MB, timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_failures_say_why(site) -> None:
    base, _ = site
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch(f"{base}/missing.png", allow("127.0.0.1"), MB)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchFailed, match="failed"):
        fetch(f"http://127.0.0.1:{port}/a.png", allow("127.0.0.1"), MB)


# ---- through the server ------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with served(tmp_path_factory.mktemp("url-fetch") / "server.log", "--allow-url-fetch", "127.0.0.1",
                "--url-fetch-timeout", "2") as proc:
        yield proc


def errors_of(r: httpx.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    return r.json()["errors"][0]


def test_image_url_and_bg_image_url_through_the_server(server, site) -> None:
    base, _ = site
    with http_server({"/bg.png": disc_image(100, 100, "PNG")}) as (bg_base, _):
        r = httpx.post(f"{server.url}/v1.0/removebg", timeout=60,
                       json={"image_url": f"{base}/disc.png", "bg_image_url": f"{bg_base}/bg.png", "size": "full"})
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (320, 240) and img.format == "JPEG"  # opaque over the photo: format auto gives jpg
    assert np.abs(np.asarray(img)[3, 3].astype(int) - (40, 120, 200)).max() < 25  # the photo's blue corner
    assert "image_url / bg_image_url fetched from: 127.0.0.1" in server.log()


@pytest.mark.parametrize("url,code,words", [
    ("/missing.png", "failed_image_download", "HTTP 404"),
    ("/redirect-other", "failed_image_download", "another host"),
    ("/slow", "failed_image_download", "too long"),
])
def test_download_failures_through_the_server(server, site, url: str, code: str, words: str) -> None:
    base, _ = site
    error = errors_of(httpx.post(f"{server.url}/v1.0/removebg", data={"image_url": base + url}, timeout=60))
    assert error["code"] == code and words in error["detail"]
    assert error["title"].startswith("Failed to download image")


@pytest.mark.parametrize("url", ["http://localhost:9/a.png", "http://169.254.169.254/latest/meta-data",
                                 "http://10.0.0.1/a.png", "gopher://127.0.0.1/x"])
def test_refusals_through_the_server(server, url: str) -> None:
    error = errors_of(httpx.post(f"{server.url}/v1.0/removebg", data={"image_url": url}, timeout=30))
    assert error["code"] == "invalid_image_url"
    error = errors_of(httpx.post(f"{server.url}/v1.0/removebg", files={"image_file": ("a.png", DISC)},
                                 data={"bg_image_url": url}, timeout=30))
    assert error["code"] == "invalid_bg_image_url"


def test_a_bad_allow_list_stops_the_server_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not a host name"):
        with served(tmp_path / "server.log", "--allow-url-fetch", "http://x/"):
            pass
