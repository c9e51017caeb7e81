"""API keys (server/auth.py) and per-client rate limits (server/ratelimit.py).

Units with a fake clock, the app in-process for every path and header, and real
server processes for start-up errors, the log, and a concurrent load in which
every request must be answered (200 or 429) with counts the token bucket allows.
"""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bgclear.server import ServerSettings, create_app
from bgclear.server.auth import KeyFileError, KeyStore
from bgclear.server.ratelimit import RateLimit, RateLimiter

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import REPO, disc_image, free_port, start_server  # noqa: E402

KEY_A = "bgc_live_9f1c2ad4e7b6a8c0d1e2f3a4b5c6d7e8"
KEY_B = "bgc_live_0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- the key file ----------------------------------------------------------------

def test_key_file_takes_keys_and_hashes_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\n  {KEY_A}  \nsha256:{sha(KEY_B).upper()}\n# sha256:{sha('old')}\n{KEY_A}\n")
    store = KeyStore.load(path)
    assert len(store.digests) == 2  # the repeated key counts once
    assert store.match(KEY_A) == hashlib.sha256(KEY_A.encode()).digest()
    assert store.match(KEY_B) == hashlib.sha256(KEY_B.encode()).digest()
    assert store.match("old") is None and store.match(KEY_A + "x") is None and store.match("") is None


@pytest.mark.parametrize("content,expected", [
    ("", "holds no key"),
    ("# only a comment\n\n   \n", "holds no key"),
    ("good-key\nsha256:1234\n", "line 2"),
    ("sha256:" + "g" * 64 + "\n", "line 1"),
])
def test_unusable_key_files_are_refused_with_the_reason(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(KeyFileError) as err:
        KeyStore.load(path)
    assert expected in str(err.value)
    assert "good-key" not in str(err.value)  # a message never quotes a key


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read the API key file"):
        KeyStore.load(tmp_path / "missing")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(KeyFileError, match="cannot read"):
        KeyStore.load(tmp_path / "binary")


def test_every_stored_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the same number of compare_digest calls, over equal-length digests,
    for the first key, the last key and a wrong one."""
    store = KeyStore.from_lines([f"key-{i}" for i in range(5)])
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr("bgclear.server.auth.hmac.compare_digest", counting)
    counts = []
    for key in ("key-0", "key-4", "not-a-key", "k"):
        calls.clear()
        store.match(key)
        counts.append(len(calls))
        assert set(calls) == {(32, 32)}
    assert counts == [5, 5, 5, 5]


# ---- the token bucket --------------------------------------------------------------

@pytest.mark.parametrize("text,rate,burst", [
    ("60/min", 1.0, 10), ("5/s", 5.0, 5), ("1000/hour", 1000 / 3600, 10), ("10/5min", 10 / 300, 10),
    ("2 / minutes", 2 / 60, 2), ("0.5/s", 0.5, 1), ("100/day", 100 / 86400, 10),
])
def test_rate_limit_syntax(text: str, rate: float, burst: int) -> None:
    limit = RateLimit.parse(text)
    assert limit.rate == pytest.approx(rate) and limit.burst == burst and limit.text == text.strip()
    assert RateLimit.parse(text, burst=3).burst == 3


@pytest.mark.parametrize("text", ["60", "sixty/min", "60/fortnight", "0/min", "-5/s", "60/0min"])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit.parse("60/min", burst=3), clock=clock)
    first = [limiter.take("a") for _ in range(4)]
    assert [d.allowed for d in first] == [True, True, True, False]
    assert [d.remaining for d in first] == [2, 1, 0, 0]
    refused = first[-1]
    assert refused.retry_after == pytest.approx(1.0) and refused.reset_after == pytest.approx(3.0)
    headers = refused.headers(wall_now=5000.0)
    assert headers == {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5003",
                       "Retry-After": "1"}
    assert "Retry-After" not in first[0].headers()
    assert limiter.take("b").allowed  # another client has its own bucket
    clock.now += 0.5
    assert not limiter.take("a").allowed  # half a token is not a token
    clock.now += 0.5
    assert limiter.take("a").allowed and not limiter.take("a").allowed
    clock.now += 100
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]  # full again, never more


def test_idle_buckets_are_dropped_and_memory_is_capped() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit.parse("10/s", burst=5), max_clients=1000, clock=clock)
    for i in range(800):
        limiter.take(f"client-{i}")
    assert len(limiter) == 800
    clock.now += 0.5  # buckets down one token are full again after 0.1 s
    limiter.take("late")
    assert len(limiter) == 1
    for i in range(5000):
        limiter.take(f"flood-{i}")
    assert len(limiter) == 1000  # the hard cap holds while they are all still refilling
    # A client over its limit is not forgotten while its bucket refills.
    for _ in range(6):
        limiter.take("busy")
    assert not limiter.take("busy").allowed


def test_the_bucket_is_thread_safe() -> None:
    clock = FakeClock()  # frozen: exactly the burst is allowed, however the threads interleave
    limiter = RateLimiter(RateLimit.parse("1/hour", burst=50), clock=clock)
    allowed = [0] * 16
    start = threading.Barrier(16)

    def hammer(i: int) -> None:
        start.wait()
        for _ in range(200):
            allowed[i] += limiter.take("shared").allowed
            limiter.take(f"own-{i}")

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50
    assert all(limiter.take(f"own-{i}").remaining == 0 for i in range(16))


# ---- the app: which paths, which answers -----------------------------------------------

@pytest.fixture(scope="module")
def keyed_app(small_session):
    keys = KeyStore.from_lines([KEY_A, f"sha256:{sha(KEY_B)}"])
    app = create_app(ServerSettings(segmenter="u2netp", api_keys=keys, rate_limit=RateLimit.parse("2/hour")),
                     session=small_session)
    with TestClient(app) as client:
        yield client


def post(client, headers: dict[str, str] | None = None, data: bytes | None = None) -> httpx.Response:
    image = disc_image(64, 48) if data is None else data
    return client.post("/v1/remove", files={"image_file": ("a.png", image, "image/png")}, headers=headers or {})


def test_missing_and_wrong_keys_get_403_and_open_paths_stay_open(keyed_app) -> None:
    for headers, code in (({}, "missing_api_key"), ({"X-Api-Key": "wrong"}, "invalid_api_key"),
                          ({"Authorization": f"Basic {KEY_A}"}, "missing_api_key"),
                          ({"Authorization": "Bearer "}, "missing_api_key"),
                          ({"X-Api-Key": KEY_A[:-1]}, "invalid_api_key")):
        r = post(keyed_app, headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["error"]["code"] == code
        assert "X-RateLimit-Limit" not in r.headers  # refused before the bucket: no token taken
    for path in ("/", "/healthz", "/static/app.js", "/openapi.json"):
        assert keyed_app.get(path).status_code == 200, path
    health = keyed_app.get("/healthz").json()
    assert health["auth_required"] is True and health["rate_limit"] == "2/hour" and health["rate_burst"] == 2


def test_a_good_key_works_either_way_and_each_key_has_its_own_bucket(keyed_app) -> None:
    a1 = post(keyed_app, {"X-Api-Key": KEY_A})
    a2 = post(keyed_app, {"Authorization": f"Bearer {KEY_A}"}, data=b"")  # refused after the guard: still counted
    a3 = post(keyed_app, {"x-api-key": f" {KEY_A} "})
    b1 = post(keyed_app, {"Authorization": f"bearer {KEY_B}"})
    assert (a1.status_code, a2.status_code, a3.status_code, b1.status_code) == (200, 422, 429, 200)
    assert a1.headers["X-RateLimit-Limit"] == "2" and a1.headers["X-RateLimit-Remaining"] == "1"
    assert a2.headers["X-RateLimit-Remaining"] == "0" and a2.json()["error"]["code"] == "empty"
    assert b1.headers["X-RateLimit-Remaining"] == "1"
    body = a3.json()["error"]
    assert body["code"] == "rate_limited" and "2/hour" in body["message"]
    assert 1700 < int(a3.headers["Retry-After"]) <= 1800  # half an hour to the next token, less the seconds since
    reset = int(a3.headers["X-RateLimit-Reset"])
    assert time.time() + 3500 < reset <= time.time() + 3601


def test_without_keys_the_limit_is_per_client_address(small_session) -> None:
    app = create_app(ServerSettings(segmenter="u2netp", rate_limit=RateLimit.parse("1/hour")), session=small_session)
    with TestClient(app) as client:
        assert client.get("/healthz").json()["auth_required"] is False
        assert post(client).status_code == 200
        second = post(client)
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited"
        assert "client address" in second.json()["error"]["message"]
    open_app = create_app(ServerSettings(segmenter="u2netp"), session=small_session)
    with TestClient(open_app) as client:
        r = post(client)
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers  # off by default


# ---- real server processes ---------------------------------------------------------------

def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``python -m bgclear.server`` expecting it to stop by itself (a start-up error)."""
    return subprocess.run([sys.executable, "-m", "bgclear.server", "--port", str(free_port()), "--segmenter", "u2netp",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("content,expected", [(None, "cannot read the API key file"), ("# nothing\n", "holds no key")])
def test_an_unusable_key_file_stops_the_server_at_start(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "keys.txt"
    if content is not None:
        path.write_text(content)
    done = serve("--api-keys", str(path))
    assert done.returncode != 0
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_burst_without_a_rate_and_a_bad_rate_are_start_up_errors() -> None:
    assert "--rate-limit" in serve("--burst", "5").stderr
    done = serve("--rate-limit", "lots")
    assert done.returncode != 0 and "N/min" in done.stderr


def test_without_keys_it_says_it_listens_on_loopback_only(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server.log")
    try:
        log = server.log()
        assert "no API keys" in log and "127.0.0.1 only" in log
    finally:
        server.stop()


def test_keys_never_reach_the_log(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY_A}\nsha256:{sha(KEY_B)}\n")
    server = start_server(tmp_path / "server.log", "--api-keys", str(keys), "--log-level", "debug")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert post(client, {"X-Api-Key": KEY_A}).status_code == 200
            assert post(client, {"Authorization": f"Bearer {KEY_B}"}).status_code == 200
            assert post(client, {"X-Api-Key": KEY_B + "-typo"}).status_code == 403
            assert post(client).status_code == 403
            assert client.get("/healthz").json()["auth_required"] is True
    finally:
        server.stop()
    log = server.log()
    assert "API keys required" in log and "refused: invalid_api_key" in log
    for secret in (KEY_A, KEY_B, KEY_A[-12:], KEY_B[-12:], sha(KEY_A), sha(KEY_B)):
        assert secret not in log


def test_concurrent_load_every_request_answered_within_the_bucket(tmp_path: Path) -> None:
    """Two keys, 12 threads each, 4 requests per thread with real cutouts: every request
    gets 200 or 429, and each key's 200s fit the bucket (burst + rate x elapsed)."""
    rate, burst, per_thread, threads_per_key = 0.5, 8, 4, 12
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    server = start_server(tmp_path / "server.log", "--api-keys", str(keys), "--rate-limit", f"{rate:g}/s",
                          "--burst", str(burst), "--max-concurrency", "1", "--queue-size", "64")
    image = disc_image(64, 48)
    results: list[tuple[str, float, float, httpx.Response | Exception]] = []
    lock = threading.Lock()
    start = threading.Barrier(2 * threads_per_key)

    def client(key: str, pause: float) -> None:
        start.wait()
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for _ in range(per_thread):
                sent = time.monotonic()
                try:
                    r: httpx.Response | Exception = post(http, {"X-Api-Key": key}, data=image)
                except Exception as exc:  # noqa: BLE001 - counted as lost below
                    r = exc
                with lock:
                    results.append((key, sent, time.monotonic(), r))
                time.sleep(pause)

    workers = [threading.Thread(target=client, args=(key, 0.05 * (i % 4)))
               for key in (KEY_A, KEY_B) for i in range(threads_per_key)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        server.stop()
    assert len(results) == 2 * threads_per_key * per_thread
    lost = [r for *_, r in results if not isinstance(r, httpx.Response)]
    assert lost == []
    assert {r.status_code for *_, r in results} <= {200, 429}  # type: ignore[union-attr]
    for key in (KEY_A, KEY_B):
        mine = [(sent, got, r) for k, sent, got, r in results if k == key]
        ok = [m for m in mine if m[2].status_code == 200]
        refused = [m for m in mine if m[2].status_code == 429]
        assert all(r.headers["X-RateLimit-Limit"] == str(burst) for *_, r in mine)
        assert all(int(r.headers["Retry-After"]) >= 1 for *_, r in refused)
        assert refused, "the load must exceed the bucket"
        # Every decision happened between the first send and the last answer...
        upper = burst + rate * (max(got for _, got, _ in mine) - min(sent for sent, _, _ in mine))
        # ...and at the last refusal the bucket was empty: every token made by then was used.
        lower = burst + rate * (max(sent for sent, _, _ in refused) - min(got for _, got, _ in mine)) - 1
        assert lower <= len(ok) <= upper + 1e-6, (key, lower, len(ok), upper)
