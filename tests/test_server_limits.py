"""Concurrency, the queue, readiness and start-up failures, over real server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import disc_image, start_server  # noqa: E402

# Blocks model loading until the test creates the gate file, so "loading" can be
# observed without relying on timing.
GATED_LOAD = r'''
import os, time, bgclear.pipeline as _p
_orig_init = _p.Session.__init__
def _gated_init(self, *a, **k):
    while not os.path.exists(os.environ["BGCLEAR_TEST_GATE"]):
        time.sleep(0.05)
    _orig_init(self, *a, **k)
_p.Session.__init__ = _gated_init
'''


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory):
    """One cutout at a time and one waiting: the third concurrent request is refused."""
    proc = start_server(tmp_path_factory.mktemp("limits") / "server.log", "--max-concurrency", "1", "--queue-size", "1",
                        "--upload-timeout", "2")
    yield proc
    proc.stop()


def test_requests_beyond_the_queue_get_503_with_retry_after(small_server) -> None:
    image = disc_image(800, 600, "JPEG", quality=90)
    n = 6
    results: list[httpx.Response | Exception] = [None] * n  # type: ignore[list-item]
    barrier = threading.Barrier(n)

    def send(i: int) -> None:
        barrier.wait()
        try:
            results[i] = httpx.post(f"{small_server.url}/v1/remove", files={"image_file": ("a.jpg", image)}, timeout=120)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, httpx.Response) for r in results), results  # nothing dropped
    statuses = sorted(r.status_code for r in results)  # type: ignore[union-attr]
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 2  # the running one and the queued one
    for r in results:
        if r.status_code == 503:  # type: ignore[union-attr]
            assert r.json()["error"]["code"] == "busy"  # type: ignore[union-attr]
            assert int(r.headers["retry-after"]) >= 1  # type: ignore[union-attr]
    health = httpx.get(f"{small_server.url}/healthz").json()
    assert (health["running"], health["waiting"]) == (0, 0)
    # Once the burst is over, the server takes work again.
    assert httpx.post(f"{small_server.url}/v1/remove", files={"image_file": ("a.jpg", image)}, timeout=60).status_code == 200


def test_cutouts_do_not_block_the_event_loop(small_server) -> None:
    """While a cutout runs, /healthz still answers, and reports it as running."""
    image = disc_image(800, 600, "JPEG", quality=90)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (httpx.post(f"{small_server.url}/v1/remove",
                                                         files={"image_file": ("a.jpg", image)}, timeout=60), done.set()))
    worker.start()
    seen_running = False
    while not done.is_set() and not seen_running:
        seen_running = httpx.get(f"{small_server.url}/healthz", timeout=60).json()["running"] == 1
    worker.join()
    assert seen_running


def test_a_queued_request_whose_client_left_is_skipped(small_server) -> None:
    url = small_server.url
    running = threading.Thread(target=lambda: httpx.post(f"{url}/v1/remove", timeout=60,
                                                          files={"image_file": ("a.jpg", disc_image(1200, 900, "JPEG"))}))
    running.start()
    health = lambda: httpx.get(f"{url}/healthz", timeout=60).json()  # noqa: E731
    for _ in range(500):
        if health()["running"] == 1:
            break
    image = disc_image(320, 240, "JPEG")
    with socket.create_connection(("127.0.0.1", small_server.port)) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  + f"Content-Length: {len(image)}\r\n\r\n".encode() + image)
        for _ in range(500):
            if health()["waiting"] == 1:
                break
        assert health()["waiting"] == 1
    running.join()
    for _ in range(500):
        if "skipped: the client left" in small_server.log():
            break
        threading.Event().wait(0.02)
    assert "skipped: the client left before its turn" in small_server.log()


def test_an_upload_that_stalls_times_out_and_frees_its_place(small_server) -> None:
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 100000\r\n\r\n\xff\xd8\xff")
        reply = b""
        while not reply.rstrip().endswith(b"}}"):
            data = s.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert b'"upload_timeout"' in body
    assert httpx.get(f"{small_server.url}/healthz").json()["waiting"] == 0


def test_healthz_is_not_ready_until_the_model_has_loaded(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    proc = start_server(tmp_path / "server.log", env={"BGCLEAR_TEST_GATE": str(gate)}, prelude=GATED_LOAD, wait_ready=False)
    try:
        r = httpx.get(f"{proc.url}/healthz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = httpx.post(f"{proc.url}/v1/remove", files={"image_file": ("a.png", disc_image(64, 48))})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        assert int(r.headers["retry-after"]) >= 1
        gate.touch()
        for _ in range(600):
            r = httpx.get(f"{proc.url}/healthz")
            if r.json()["status"] != "loading":
                break
            threading.Event().wait(0.05)
        assert r.status_code == 200 and r.json()["status"] == "ready"
    finally:
        proc.stop()


def test_missing_model_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    env = {"BGCLEAR_HOME": str(tmp_path / "empty-home")}
    result = subprocess.run([sys.executable, "-m", "bgclear.server", "--port", "0", "--segmenter", "u2netp"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert result.returncode != 0
    assert "bgclear models pull u2netp" in result.stderr


def test_unknown_model_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bgclear.server", "--port", "0", "--segmenter", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "unknown model 'nope'" in result.stderr
